"""Identity: users, passwords and (later) sessions, codes, TOTP and Google sign-in."""
