"""Exchange rates, quotes and the arithmetic of converting money between currencies."""
