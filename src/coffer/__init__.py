"""coffer: a self-hostable wallet and payments-ledger service."""
