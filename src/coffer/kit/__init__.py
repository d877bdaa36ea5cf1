"""Domain-free helpers. Nothing here imports from coffer's domains."""
