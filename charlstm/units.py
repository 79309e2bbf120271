"""Losses are nats per character everywhere inside charlstm; people read bits per character too.
The one conversion between them."""

import math

LN2 = math.log(2)


def nats_to_bits(nats: float) -> float:
    """Bits for `nats` (per character): divided by ln 2. Works on arrays too."""
    return nats / LN2
