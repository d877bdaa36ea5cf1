"""Payment providers behind one protocol (`base.PaymentProvider`): sandbox, Paystack, Stripe."""
