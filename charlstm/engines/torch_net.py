"""charlstm's model, optimisers and weight average as PyTorch objects, for the torch engine
(`torch_engine`): `Net` computes what model.py computes — one recurrent module per layer
(`nn.LSTM`, `nn.GRU`, `nn.RNN`: cuDNN on a GPU) on one-hot characters, model.py's dropout after
every layer (the last included) and DropConnect on W_hh, then `nn.Linear` — under parameter names
that `parameter_names` maps to the checkpoints'; `make_optimizer` is torch.optim with optim.py's
hyper-parameters; `Average` is average.py's moving average on the device."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from charlstm.config import ModelConfig
from charlstm.errors import UsageError
from charlstm.nn import model, optim


def recurrent_layer(config: ModelConfig) -> Any:
    """The torch.nn class that computes the model's cell (`Cell.TORCH`: nn.LSTM, nn.GRU, nn.RNN),
    its options bound; a UsageError for a cell that none computes."""
    if (declared := model.cell_of(config).TORCH) is None:
        raise UsageError(
            f"--engine torch: PyTorch has no module that computes the {config.cell} cell; train it with --engine numpy"
        )
    return functools.partial(getattr(nn, declared[0]), **declared[1])


class Net(nn.Module):
    """model.py's model as PyTorch modules: `forward(x, state)` on ids x (T, B) from the state
    (one (L, B, H) tensor per name in the cell's STATE_NAMES) returns the logits (T, B, V) and the
    final state. Dropout (training only) is model.Dropout's — each layer's output, per step or per
    window, from `generator` (one per rank: a rank's streams are its own), and DropConnect on each
    W_hh from `shared` (seeded alike on every rank, so that K ranks drop what one process drops).
    Neither generator is module state.

    `bf16_head`: in training the head (`nn.Linear`) runs under bfloat16 autocast; the recurrent
    layers never do, nor does validation. (PyTorch's autocast runs cuDNN's LSTM/GRU/RNN in
    float16 whatever dtype it is asked for — `_cudnn_rnn_cast_reflatten` — with no loss scale to
    keep small gradients from underflowing.)"""

    def __init__(
        self,
        config: ModelConfig,
        drop: model.Dropout,
        generator: torch.Generator,
        shared: torch.Generator | None = None,
        bf16_head: bool = False,
    ) -> None:
        super().__init__()
        V, H = config.vocab_size, config.hidden_size
        self.V, self.drop, self.generator, self.bf16_head = V, drop, generator, bf16_head
        self.shared = shared if shared is not None else generator
        layer = recurrent_layer(config)
        self.layers = nn.ModuleList(layer(V if k == 0 else H, H) for k in range(config.num_layers))
        self.head = nn.Linear(H, V)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        inp = F.one_hot(x, self.V).to(self.head.weight.dtype)  # (T, B, V)
        finals = []
        for k, layer in enumerate(self.layers):
            layer_state = tuple(s[k : k + 1] for s in state)  # (1, B, H) each
            inp, final = self._recur(layer, inp, layer_state if len(layer_state) > 1 else layer_state[0])  # (T, B, H)
            finals.append(final if isinstance(final, tuple) else (final,))
            if self.training and self.drop.p > 0:
                inp = inp * self._mask(inp.shape if self.drop.mask == "step" else (1, *inp.shape[1:]), self.drop.p, inp)
        return self._head(inp), tuple(torch.cat(s) for s in zip(*finals))

    def _head(self, inp: torch.Tensor) -> torch.Tensor:
        """The logits (T, B, V) of the last layer's output (T, B, H): bf16 in training with `bf16_head`."""
        if not (self.training and self.bf16_head):
            return self.head(inp)
        with torch.autocast(inp.device.type, dtype=torch.bfloat16):
            return self.head(inp)

    def _recur(self, layer: nn.Module, inp: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """The layer over the window; with weight drop, on W_hh ⊙ mask (one (G, H) mask a window)."""
        if not (self.training and self.drop.weight_hh > 0):
            return layer(inp, state)
        W_hh = layer.get_parameter("weight_hh_l0")
        dropped = W_hh * self._mask(W_hh.shape, self.drop.weight_hh, W_hh, self.shared)
        return torch.func.functional_call(layer, {"weight_hh_l0": dropped}, (inp, state))

    def _mask(self, shape: Any, p: float, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inverted dropout's mask: 1 / (1 − p) where kept (probability 1 − p), else 0."""
        keep = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(
            1.0 - p, generator=generator or self.generator
        )
        return keep.div_(1.0 - p)


def parameter_names(config: ModelConfig) -> dict[str, str]:
    """checkpoint name (`lstm.weight_ih_l1`) → Net's name (`layers.1.weight_ih_l0`), in the
    checkpoint's order."""
    names = {}
    for name in model.param_shapes(config):
        cell_name, _, tensor = name.partition(".")
        if cell_name == "head":
            names[name] = name
        else:
            base, _, k = tensor.rpartition("_l")
            names[name] = f"layers.{k}.{base}_l0"
    return names


def make_optimizer(
    name: str, parameters: list[nn.Parameter], betas: tuple[float, float] = optim.ADAM_BETAS
) -> torch.optim.Optimizer:
    """torch.optim's optimiser `name` with charlstm's hyper-parameters (`optim.py`); Adam's decays `betas`."""
    if name == "adam":
        return torch.optim.Adam(parameters, betas=betas, eps=optim.EPS)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, alpha=optim.RMSPROP_ALPHA, eps=optim.EPS)
    return torch.optim.SGD(parameters, momentum=optim.SGD_MOMENTUM)


class Average:
    """`charlstm.nn.average.WeightAverage` on the device: the bias-corrected EMA of the weights,
    s ← s + (1 − d)(θ − s), w ← d w + (1 − d), the average s / w (the weights before any update)."""

    def __init__(self, params: dict[str, nn.Parameter], decay: float) -> None:
        self.decay, self.weight = decay, 0.0
        self.sums = {k: torch.zeros_like(p, requires_grad=False) for k, p in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, nn.Parameter]) -> None:
        torch._foreach_lerp_(list(self.sums.values()), [params[k] for k in self.sums], 1.0 - self.decay)
        self.weight = self.decay * self.weight + (1.0 - self.decay)

    def value(self, params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        if self.weight == 0.0:
            return {k: p.detach() for k, p in params.items()}
        return {k: s / self.weight for k, s in self.sums.items()}


class Numbers:
    """A step's (loss, gradient norm), a (2,) tensor on the device, on its way to the host
    without stopping the device's queue: on CUDA copied into the pinned buffer `host` behind an
    event, so that `get` waits for this step alone, not for the steps queued after it."""

    def __init__(self, values: torch.Tensor, host: torch.Tensor | None = None) -> None:
        self.event: Any = None
        if values.device.type == "cuda" and host is not None:
            self.values = host.copy_(values, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.values = values.detach()  # the CPU: already there; MPS: read (waiting) when asked

    def get(self) -> tuple[float, float]:
        if self.event is not None:
            self.event.synchronize()
        loss, norm = self.values.tolist()
        return loss, norm
