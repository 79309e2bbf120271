"""Corpora of other kinds for the quality benchmark, made from what every Python install has, so
the defaults are checked on text they were not tuned on (tinyshakespeare is the tuning text).

    python bench/make_corpora.py            # writes bench/results/corpora/*.txt, prints their sizes

- `python_src.txt`: source code — the standard library's own modules, in sorted path order,
  concatenated up to 600 kB (whole files only; each preceded by a `# file: NAME` line).
- `python_reference.txt`: English technical prose — the Python Language Reference's topics as
  `help()` shows them (`pydoc_data.topics`: statements, expressions, the data model, with their
  grammar rules and short examples), in sorted topic order, up to 600 kB (465 kB on Python 3.11).

Both are deterministic for a given Python version; the sizes printed say which one made them.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "corpora"


def python_source(limit: int = 600_000) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        chunk = f"# file: {path.name}\n{text}\n"
        if size + len(chunk) > limit:
            break
        parts.append(chunk)
        size += len(chunk)
    return "".join(parts)


def python_reference(limit: int = 600_000) -> str:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise SystemExit(
            "this Python has no pydoc_data (the help() topics); install its full standard library"
        ) from None
    parts, size = [], 0
    for name in sorted(topics):
        chunk = topics[name].strip() + "\n\n"
        if size + len(chunk) > limit:
            break
        parts.append(chunk)
        size += len(chunk)
    return "".join(parts)


CORPORA = {"python_src.txt": python_source, "python_reference.txt": python_reference}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in CORPORA.items():
        path = OUT / name
        path.write_text(make(), encoding="utf-8")
        text = path.read_text(encoding="utf-8")
        print(f"{path}: {len(text):,} characters, {len(set(text))} distinct")


if __name__ == "__main__":
    main()
