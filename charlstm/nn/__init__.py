"""The numerical core."""
