"""Large corpora: encode time, cached start time and peak RSS of training, at 10 MB and 100 MB.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/corpus_scale.py [--sizes 10 100]

Builds synthetic UTF-8 corpora (mixed ASCII and multi-byte characters: accented Latin, Greek,
Cyrillic, CJK, emoji) in a temporary folder, then for each size measures, each in a fresh process:
- the first encoding (streaming decode, vocabulary, id file written to an empty cache folder);
- a cached start (the id file is memory-mapped: nothing is decoded again);
- peak RSS of `charlstm train FILE --max-steps 20` (default 2×256 model; --val-fraction 0.002 so
  the final validation pass stays short), next to the same command on a 1 MB corpus, so what the
  corpus itself adds to memory is visible.
Prints a table and writes bench/results/corpus_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORDS = [
    "the",
    "sea",
    "wind",
    "light",
    "keeper",
    "lamp",
    "night",
    "storm",
    "harbour",
    "boat",
    "rope",
    "tide",
    "rock",
    "gull",
    "cliff",
    "bell",
    "fog",
    "déjà",
    "vu",
    "café",
    "naïve",
    "façade",
    "Grüße",
    "Straße",
    "niño",
    "mañana",
    "smörgåsbord",
    "θάλασσα",
    "άνεμος",
    "φως",
    "νύχτα",
    "море",
    "ветер",
    "свет",
    "ночь",
    "海",
    "風",
    "光",
    "夜",
    "灯台",
    "嵐",
    "港",
    "🌊",
    "⭐",
    "🐟",
    "⛵",
]


def make_corpus(path: Path, megabytes: int, seed: int = 0) -> None:
    """About `megabytes` MB of UTF-8 text: random words, punctuation and line breaks."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS + [w.capitalize() + "," for w in WORDS[:10]] + ["\n"] * 4, dtype=object)
    target = megabytes * 1_000_000
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            block = " ".join(words[rng.integers(0, len(words), 200_000)]) + ".\n"
            data = block.encode("utf-8")
            f.write(block)
            written += len(data)


def in_fresh_process(code: str, env: dict) -> dict:
    """Run Python code in a new process; it prints one JSON object, returned here."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


ENCODE = """
import json, time, resource
t = time.perf_counter()
from charlstm.text.corpus import load_corpus
from charlstm.text.idcache import is_mapped
c = load_corpus({path!r})
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "chars": len(c), "vocab": c.vocab.size, "mapped": is_mapped(c.ids),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

TRAIN = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run([sys.executable, "-m", "charlstm", "train", {path!r}, "--max-steps", "20", "--val-fraction", "0.002",
                    "--sample-length", "50", "--fresh", "-q", "--out", {out!r}], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
print(json.dumps({{"seconds": time.perf_counter() - t, "maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="corpus sizes in MB")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "CHARLSTM_CACHE": str(tmp / "cache")}
        base = tmp / "base.txt"
        make_corpus(base, 1)
        baseline = in_fresh_process(TRAIN.format(path=str(base), out=str(tmp / "base.safetensors")), env)
        for mb in args.sizes:
            path = tmp / f"corpus{mb}.txt"
            t = time.perf_counter()
            make_corpus(path, mb)
            made = time.perf_counter() - t
            first = in_fresh_process(ENCODE.format(path=str(path)), env)
            cached = in_fresh_process(ENCODE.format(path=str(path)), env)
            trained = in_fresh_process(TRAIN.format(path=str(path), out=str(tmp / f"m{mb}.safetensors")), env)
            rows.append(
                {
                    "megabytes": path.stat().st_size / 1e6,
                    "chars": first["chars"],
                    "vocab": first["vocab"],
                    "generate_s": made,
                    "encode_s": first["seconds"],
                    "encode_peak_rss_mb": first["maxrss_mb"],
                    "cached_start_s": cached["seconds"],
                    "memory_mapped": cached["mapped"],
                    "train20_s": trained["seconds"],
                    "train20_peak_rss_mb": trained["maxrss_mb"],
                    "train20_peak_rss_1mb_corpus_mb": baseline["maxrss_mb"],
                }
            )
            print(f"done {mb} MB", file=sys.stderr)
    header = f"{'corpus':>9} {'chars':>12} {'V':>4} {'encode':>8} {'enc RSS':>8} {'cached':>8} {'train RSS':>10} {'1MB RSS':>8} {'train s':>8}"
    print(header)
    for r in rows:
        print(
            f"{r['megabytes']:>7.1f}MB {r['chars']:>12,} {r['vocab']:>4} {r['encode_s']:>7.2f}s {r['encode_peak_rss_mb']:>6.0f}MB "
            f"{r['cached_start_s']:>7.3f}s {r['train20_peak_rss_mb']:>8.0f}MB {r['train20_peak_rss_1mb_corpus_mb']:>6.0f}MB {r['train20_s']:>7.1f}s"
        )
    out = HERE / "results" / "corpus_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
