"""What the views need, as arrays and dataclasses (no printing, no rich, no typer):

    tracing      trace: one forward over a text with B = 1: every layer's gates and states, the logits
    features     text features (quotes, bracket depth, line position, indent, a regex) and the
                 units whose values correlate with them best
    scoring      surprisal: bits of every predicted character and the model's top guesses
    gates        saturation: how often each gate is below 0.1 or above 0.9 (for the RNN: |h| > 0.9)
    gradflow     gradient_flow: ‖∂L_t/∂h_{t−k}‖ (and ‖∂L_t/∂c_{t−k}‖) against k, exact, by backprop;
                 decay: how much of it is left K steps back
    backstep     the plain one-step backward of each cell that gradflow walks back with
    finitediff   gradcheck: analytic against central-difference gradients of a small random model
"""

from charlstm.probe.features import NAMED as NAMED_FEATURES
from charlstm.probe.features import UnitScore, correlations, feature, rank_units
from charlstm.probe.finitediff import GradcheckResult, Problem, TensorCheck, gradcheck, model_grads, random_problem
from charlstm.probe.gradflow import GradientFlow, choose_positions, decay, gradient_flow
from charlstm.probe.gates import GATES, GateSaturation, saturation
from charlstm.probe.scoring import Surprisal, surprisal
from charlstm.probe.tracing import QUANTITIES, SIGMOID, TextIds, Trace, text_ids, trace

__all__ = [
    "GATES", "NAMED_FEATURES", "QUANTITIES", "SIGMOID", "GateSaturation", "GradcheckResult", "GradientFlow",
    "Problem", "Surprisal", "TensorCheck", "TextIds", "Trace", "UnitScore", "choose_positions", "correlations", "decay",
    "feature", "gradcheck", "gradient_flow", "model_grads", "random_problem", "rank_units", "saturation",
    "surprisal", "text_ids", "trace",
]
