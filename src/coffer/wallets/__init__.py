"""Wallets: numbers, balances, history and operator adjustments."""
