"""Operators' control of users and wallets (seed 002, DESIGN.md §5 Admin)."""
