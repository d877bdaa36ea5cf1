"""The one `Principal` dependency every protected route uses, and permission checks."""
