"""bench/wavefront.py (issue 27's probe): every wavefront variant computes what today's schedule
computes — outputs, final states and gradients — on a tiny model, on both kernel paths; and the
check it runs before timing fails when a variant computes with other weights. Times not checked."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import wavefront  # noqa: E402
from wavefront_schedules import Today, make_net  # noqa: E402

from charlstm.nn import kernels  # noqa: E402

SPLITS, SYNCS = ["none", "half", "all"], ["event", "condition"]


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_every_wavefront_variant_equals_todays_schedule(name: str) -> None:
    if name == "numba" and not kernels.available():
        pytest.skip("numba is not installed")
    k = kernels.load(name)
    net = make_net(B=5, T=9, H=24, seed=2)
    worst = wavefront.check(Today(net, k), wavefront.variants(net, k, SPLITS, SYNCS))
    assert 0.0 <= worst <= wavefront.RTOL


def test_the_check_fails_when_a_variant_computes_otherwise() -> None:
    k = kernels.load("numpy")
    net = make_net(B=4, T=6, H=16, seed=4)
    other = replace(net, b_hh=[net.b_hh[0], net.b_hh[1] + 1e-2])
    with pytest.raises(SystemExit, match="differs from today's"):
        wavefront.check(Today(net, k), wavefront.variants(other, k, ["half"], ["event"]))
