"""Money in and out: deposits, withdrawals, payout destinations, saved cards, the webhook inbox."""
