"""The vocabulary: the characters a model knows, in code-point order, and their compact ids.

Kept apart from corpus reading so that the id cache and checkpoints can use it without importing
the corpus module (which itself uses the id cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from charlstm.errors import CorpusError, VocabularyError


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as a (len(text),) uint32 array, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def id_dtype(vocab_size: int) -> np.dtype:
    """The most compact unsigned dtype that holds ids 0 .. vocab_size-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise CorpusError(f"vocabulary of {vocab_size} characters is too large")


@dataclass(frozen=True)
class Vocab:
    """The characters a model knows, in sorted order; id k is `chars[k]`."""

    chars: tuple[str, ...]
    _points: np.ndarray = field(init=False, repr=False, compare=False)  # sorted code points, for encode()

    def __post_init__(self) -> None:
        if not self.chars:
            raise VocabularyError("a vocabulary needs at least one character")
        if any(len(ch) != 1 for ch in self.chars):
            raise VocabularyError("every vocabulary entry must be a single character")
        if list(self.chars) != sorted(set(self.chars)):
            raise VocabularyError("vocabulary characters must be distinct and sorted")
        points = np.array([ord(ch) for ch in self.chars], dtype=np.uint32)
        object.__setattr__(self, "_points", points)

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The sorted set of the characters of `text`."""
        return cls(tuple(chr(p) for p in np.unique(code_points(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        return id_dtype(self.size)

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: object) -> bool:
        return isinstance(ch, str) and len(ch) == 1 and ch in self._index

    @property
    def _index(self) -> dict[str, int]:
        index = self.__dict__.get("_index_cache")
        if index is None:
            index = {ch: k for k, ch in enumerate(self.chars)}
            object.__setattr__(self, "_index_cache", index)
        return index

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.chars))

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text`, shape (len(text),), in `self.dtype`. Unknown characters raise."""
        points = code_points(text)
        ids = np.searchsorted(self._points, points)
        ids[ids >= self.size] = 0
        bad = self._points[ids] != points
        if bad.any():
            missing = self.unknown(text)
            raise VocabularyError(f"{len(missing)} character(s) not in the vocabulary: {describe_chars(missing)}")
        return ids.astype(self.dtype)

    def encode_known(self, text: str) -> tuple[np.ndarray, int]:
        """Ids of the characters of `text` that are in the vocabulary, and how many were not
        (those are left out, so the known text around them is still scored)."""
        points = code_points(text)
        ids = np.searchsorted(self._points, points)
        ids[ids >= self.size] = 0
        known = self._points[ids] == points
        return ids[known].astype(self.dtype), int(len(points) - known.sum())

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """The text of a sequence of ids."""
        chars = self.chars
        return "".join(chars[int(k)] for k in np.asarray(ids).ravel())


def describe_chars(chars: list[str], limit: int = 20) -> str:
    """A short, visible listing of characters, e.g. `'é', '\\t', 'ß'` (control chars escaped)."""
    shown = ", ".join(repr(ch) for ch in chars[:limit])
    return shown + (f", … ({len(chars) - limit} more)" if len(chars) > limit else "")
