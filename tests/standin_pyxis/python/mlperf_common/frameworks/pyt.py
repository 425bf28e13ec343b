"""Stand-in for mlperf_common.frameworks.pyt (see mlperf_common's docstring): the rank and barrier of
torch.distributed, rank 0 and no barrier when it is not initialized (as in the job scripts' one-line loggers)."""

from __future__ import annotations

import torch


class PyTCommunicationHandler:
    def is_distributed(self) -> bool:
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    def global_rank(self) -> int:
        return torch.distributed.get_rank() if self.is_distributed() else 0

    def barrier(self, sync_group=None) -> None:
        if self.is_distributed():
            torch.distributed.barrier(sync_group)
