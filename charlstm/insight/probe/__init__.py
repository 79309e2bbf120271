"""What the views need, as arrays and dataclasses (no printing, no rich, no typer):

    tracing      trace: one forward over a text with B = 1: every layer's gates and states, the logits
    features     text features (quotes, bracket depth, line position, indent, a regex) and the
                 units whose values correlate with them best
    scoring      surprisal: bits of every predicted character and the model's top guesses
    gates        saturation: how often each gate is below 0.1 or above 0.9 (for the RNN: |h| > 0.9)
    gradflow     gradient_flow: ‖∂L_t/∂h_{t−k}‖ (and ‖∂L_t/∂c_{t−k}‖) against k, exact, by backprop
                 with the cell's plain one-step backward; decay: how much of it is left K steps back
    reference    the model computed plainly from each cell's plain step, one step at a time
    finitediff   central differences; gradcheck: analytic against central-difference gradients of
                 a small random model

Which quantities a cell has, which lie in (0, 1) and which are counted as gates, each cell says
(`charlstm.nn.cells.Cell`); `quantities`, `sigmoids`, `saturation` and `stand_ins` read it for a model.
"""

from charlstm.insight.probe.features import NAMED as NAMED_FEATURES
from charlstm.insight.probe.features import UnitScore, correlations, feature, rank_units
from charlstm.insight.probe.finitediff import (
    GradcheckResult,
    Problem,
    TensorCheck,
    gradcheck,
    model_grads,
    random_problem,
)
from charlstm.insight.probe.gates import GateSaturation, saturation, stand_ins
from charlstm.insight.probe.gradflow import GradientFlow, choose_positions, decay, gradient_flow
from charlstm.insight.probe.scoring import Surprisal, surprisal
from charlstm.insight.probe.tracing import TextIds, Trace, quantities, sigmoids, text_ids, trace

__all__ = [
    "NAMED_FEATURES",
    "GateSaturation",
    "GradcheckResult",
    "GradientFlow",
    "Problem",
    "Surprisal",
    "TensorCheck",
    "TextIds",
    "Trace",
    "UnitScore",
    "choose_positions",
    "correlations",
    "decay",
    "feature",
    "gradcheck",
    "gradient_flow",
    "model_grads",
    "quantities",
    "random_problem",
    "rank_units",
    "saturation",
    "sigmoids",
    "stand_ins",
    "surprisal",
    "text_ids",
    "trace",
]
