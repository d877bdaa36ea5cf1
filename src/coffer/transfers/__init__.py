"""Transfers between wallets: accepted as pending requests, settled by the batch processor."""
