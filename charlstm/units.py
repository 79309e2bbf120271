"""Losses are nats per character everywhere inside charlstm; people read bits per character too.
The one conversion between them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import numpy as np

LN2 = math.log(2)


@overload
def nats_to_bits(nats: float) -> float: ...
@overload
def nats_to_bits(nats: np.ndarray) -> np.ndarray: ...
def nats_to_bits(nats):
    """Bits for `nats` (per character): divided by ln 2. Works on arrays too."""
    return nats / LN2
