"""The one way the report puts outside text into HTML."""

from html import escape


def esc(value: object) -> str:
    """Text from outside (a corpus, a sample, a path, a checkpoint) as HTML: <, >, &, " and ' escaped."""
    return escape(str(value), quote=True)
