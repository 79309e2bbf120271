"""Text in, ids out."""
