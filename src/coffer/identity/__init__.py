"""Identity: users, sign-up codes, passwords, sessions and tokens, TOTP and Google sign-in."""
