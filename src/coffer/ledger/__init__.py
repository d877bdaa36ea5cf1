"""The ledger: the only code that writes balances (DESIGN.md §4)."""
