"""Training across ranks under torchrun: one process per GPU (or per CPU share), one run.

    torchrun --nproc-per-node K -m charlstm train corpus.txt --engine torch

Each rank computes its contiguous share of the B streams (columns r·B/K … of every window, the
layout of one process) through DistributedDataParallel, which averages the gradients over ranks:
with equal shares that is the gradient of the whole batch's mean loss, so K ranks compute what one
process with B streams computes. The carried state stays on its rank, outside the module.

`Ranks` is the engine's team (`team.Team`): its `agree` makes the run's decisions the same on every
rank in one small all-reduce on the CPU (gloo), once a step: rank 0's clock's verdicts (the
deadline of a time budget, timed saves; under a time budget also the learning rate, a second
exchange) and any rank's stop request (Ctrl-C or SIGTERM to torchrun, which passes it to every
rank). The loss the divergence guard sees is averaged over the ranks on the device (`average`),
beside DDP's gradients: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

TIMEOUT = datetime.timedelta(hours=1)  # rank 0 may validate a large split while the others wait (gloo)
NCCL_TIMEOUT = datetime.timedelta(minutes=10)  # the gradients: ranks meet there in the same step; a hang surfaces


class Ranks:
    """The ranks of a torchrun job, joined into one process group (torchrun's environment says
    where to meet). `device`: this rank's."""

    def __init__(self, device: torch.device) -> None:
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(
            "nccl" if cuda else "gloo", timeout=NCCL_TIMEOUT if cuda else TIMEOUT, device_id=device if cuda else None
        )  # on CUDA the waits while rank 0 validates are in the control group (gloo, TIMEOUT)
        self.device = device
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        # None: the default group, gloo
        self.control = dist.new_group(backend="gloo", timeout=TIMEOUT) if cuda else None

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def wrap(self, net: nn.Module) -> nn.Module:
        """`net` under DistributedDataParallel: its gradients averaged over the ranks in backward."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids, gradient_as_bucket_view=True)

    def agree(self, lead: Sequence[float] = (), flags: Sequence[bool] = ()) -> tuple[list[float], list[bool]]:
        mine = [*(float(v) if self.leader else 0.0 for v in lead), *(float(f) for f in flags)]
        values = torch.tensor(mine, dtype=torch.float64)
        dist.all_reduce(values, group=self.control)  # a sum: of the leader's values alone, of the flags
        out = values.tolist()
        return out[: len(lead)], [v > 0 for v in out[len(lead) :]]

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a scalar on this rank's device (its gradients' group: NCCL on CUDA)."""
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.size

    def gather_streams(self, state: torch.Tensor) -> torch.Tensor:
        """Every rank's (L, B/K, H) share of a carried state, as (L, B, H) on the CPU, in rank order."""
        return torch.cat(self._all_gather(state.detach().cpu().contiguous()), dim=1)

    def gather_bytes(self, data: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's uint8 tensor of one size (a generator's state), in rank order."""
        return self._all_gather(data.cpu().contiguous())

    def _all_gather(self, local: torch.Tensor) -> list[torch.Tensor]:
        parts = [torch.empty_like(local) for _ in range(self.size)]
        dist.all_gather(parts, local, group=self.control)
        return parts

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
