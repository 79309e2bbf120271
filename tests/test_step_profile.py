"""bench/step_profile.py attributes a step's time to its pieces: on a tiny model, every piece is
found where the step's code calls it (a rename in charlstm/ that loses one fails here), none lies
inside another, and the pieces and the rest add up to the step. The times themselves are not
checked."""

from __future__ import annotations

import sys

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import step_profile  # noqa: E402
from profile_pieces import REST  # noqa: E402

L, H, B, T = 2, 16, 4, 6


def pieces(view: dict) -> dict[str, dict]:
    return {row["piece"]: row for row in view["pieces"]}


def test_the_pieces_of_a_training_step_are_found_once_each_and_add_up_to_it():
    view = step_profile.profile_training(L, H, B, T, "numpy", steps=2)
    found = pieces(view)
    per_time_step = [name for name in found if "per time step" in name or name.startswith("gate math")]
    assert len(per_time_step) == 4
    assert all(found[name]["calls"] == L * T for name in per_time_step)
    named = [row for row in view["pieces"] if row["piece"] != REST]
    assert [row["piece"] for row in named if not row["calls"]] == []  # dropout and the average included
    assert found["input projections, backward (B·T rows)"]["calls"] == 1 + 2 * (L - 1)  # one-hot GEMM, dW and dx
    assert found["head, forward and backward (B·T rows)"]["calls"] == 3
    assert all(row["gflops"] for row in named if "products" in row["piece"] or "(B·T rows)" in row["piece"])
    assert view["nested"] == []
    assert found[REST]["ms"] >= -1e-3 * view["step_ms"]
    assert view["named_ms"] + view["rest_counted_ms"] == pytest.approx(view["step_ms"], rel=0.02)
    assert view["step_ms"] <= view["recorded_ms"] * (1 + 1e-6)


def test_the_bare_step_has_no_masks_and_no_average():
    found = pieces(step_profile.profile_training(L, H, B, T, "numpy", steps=1, bare=True))
    assert found["dropout masks, drawn and applied (forward)"]["calls"] == 0
    assert found["weight average"]["calls"] == 0
    assert found["update (Adam)"]["calls"] == 1


def test_a_step_of_samples_is_its_layers_head_and_draw():
    view = step_profile.profile_samples(L, H, 4, "numpy", length=5)
    found = pieces(view)
    assert view["steps"] == 4
    assert found["layer steps: products"]["calls"] == L
    assert found["layer steps: gate math and the bias rows"]["calls"] == L
    assert found["head (linear_step)"]["calls"] == 1
    assert found["the draw (softmax, inverse CDF, uniforms)"]["calls"] == 1
    assert view["nested"] == []
    assert view["named_ms"] + view["rest_counted_ms"] == pytest.approx(view["step_ms"], rel=0.02)
