"""Monthly maintenance fees (seed 004)."""
