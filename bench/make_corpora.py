"""Corpora of other kinds for the quality benchmark, made from what every Python install has, so
the defaults are checked on text they were not tuned on (tinyshakespeare is the tuning text).

    python bench/make_corpora.py            # writes bench/results/corpora/*.txt, prints their sizes

- `python_src.txt`: source code — the standard library's own modules, in sorted path order,
  concatenated up to 600 kB (whole files only; each preceded by a `# file: NAME` line).
  Deterministic for a given Python version.
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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "python_src.txt"
    path.write_text(python_source(), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    print(f"{path}: {len(text):,} characters, {len(set(text))} distinct")


if __name__ == "__main__":
    main()
