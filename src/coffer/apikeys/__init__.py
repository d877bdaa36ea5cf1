"""API keys: create, list, revoke, roll over, and the x-api-key authenticator."""
