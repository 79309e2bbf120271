"""Which device the torch engine computes on: the device a `--device` names, checked against this
machine (the GPU a torchrun rank takes: LOCAL_RANK modulo the GPUs it sees), bf16 only where the
chosen GPU computes in it, and the devices here in words for `charlstm --version`. Importing this
module imports torch."""

from __future__ import annotations

import torch

from charlstm.engines.team import local_rank
from charlstm.errors import UsageError

BF16_CAPABILITY = (8, 0)  # Ampere: the first GPUs that compute in bfloat16 rather than emulate it


def bf16_capable(dev: torch.device) -> bool:
    """Whether the CUDA GPU `dev` computes in bfloat16: compute capability ≥ 8.0, on that GPU.
    (`torch.cuda.is_bf16_supported()` asks the current GPU, cuda:0 unless set, and by default
    says yes where bfloat16 is only emulated, on V100 and T4, slower than fp32.)"""
    return dev.type == "cuda" and tuple(torch.cuda.get_device_capability(dev)) >= BF16_CAPABILITY


def check_device(device: str, precision: str, ranks: int = 1) -> torch.device:
    """The torch.device that --device names (see `resolve_device`); a UsageError when it, or
    `precision` on it, cannot run here."""
    dev = resolve_device(device, ranks)
    if precision == "bf16":
        if dev.type != "cuda":
            raise UsageError(
                f"--precision bf16 runs on CUDA GPUs (autocast), not on the {dev.type}; use --precision fp32"
            )
        if not bf16_capable(dev):
            major, minor = torch.cuda.get_device_capability(dev)
            raise UsageError(
                f"--precision bf16: {torch.cuda.get_device_name(dev)} ({dev}, compute capability {major}.{minor}) "
                f"cannot compute in bfloat16, which needs 8.0 or newer; use --precision fp32"
            )
    return dev


def resolve_device(device: str, ranks: int = 1) -> torch.device:
    """auto: the first CUDA GPU if there is one, else the CPU. Under torchrun (`ranks` > 1) each
    rank takes GPU LOCAL_RANK mod the GPUs it sees: all of the machine's, or only its own where
    each rank is given one (CUDA_VISIBLE_DEVICES per task, as SLURM's --gpus-per-task does)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "mps":
        if ranks > 1 or not torch.backends.mps.is_available():
            raise UsageError(
                "--device mps: no Apple GPU is available to PyTorch here (and torchrun does not use one); use --device cpu"
            )
        return torch.device("mps")
    if not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", a build without CUDA"
        raise UsageError(
            f"--device {device}: no CUDA GPU is available to PyTorch {torch.__version__}{build}; use --device cpu"
        )
    count = torch.cuda.device_count()
    if ranks > 1 and device != "cuda":
        raise UsageError(
            f"--device {device}: under torchrun each rank takes the GPU of its local rank; use --device cuda"
        )
    index = local_rank() % count if ranks > 1 else int(device.partition(":")[2] or 0)
    if index >= count:
        raise UsageError(f"--device cuda:{index}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def devices() -> str:
    """The devices PyTorch can train on here, in words, for `charlstm --version`: 'cpu, cuda ×2'."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append(f"cuda ×{torch.cuda.device_count()}")
    if torch.backends.mps.is_available():
        found.append("mps")
    return ", ".join(found)
