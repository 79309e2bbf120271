"""How a character is written where it must be seen: in a table, a tooltip, a list of guesses.
One rule for the terminal (`charlstm.cli.ui`) and the report page, so both show a character alike."""

from __future__ import annotations

SPECIAL = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␠"}


def visible(ch: str) -> str:
    """`ch` as it can be seen: '\\n', '\\t', '\\r', '␠' for a space, U+XXXX for another character
    that does not print, else itself."""
    if ch in SPECIAL:
        return SPECIAL[ch]
    return ch if ch.isprintable() else f"U+{ord(ch):04X}"
