"""Stand-in for mlperf_common.logging (see the package's docstring): MLLoggerWrapper around the official
mlperf_logging logger, which writes `:::MLLOG {...}` lines to stdout."""

from __future__ import annotations

from mlperf_logging import mllog
from mlperf_logging.mllog import constants


class MLLoggerWrapper:
    """The official logger behind a rank check: by default only global rank 0 logs (unique=True).

    Each call goes through two frames of this class before the official logger (event -> _log -> logger), so
    default_stack_offset=3 makes the logged file and line those of the caller, as with NVIDIA's wrapper."""

    def __init__(self, comm_handler, mllogger=None, default_stack_offset: int = 3, **default_log_kwargs):
        self.comm_handler = comm_handler
        self.mllogger = mllogger if mllogger is not None else mllog.get_mllogger()
        self.mllogger.default_stack_offset = default_stack_offset
        self.default_log_kwargs = default_log_kwargs
        self.constants = constants

    def start(self, *args, **kwargs) -> None:
        self._log(self.mllogger.start, *args, **kwargs)

    def end(self, *args, **kwargs) -> None:
        self._log(self.mllogger.end, *args, **kwargs)

    def event(self, *args, **kwargs) -> None:
        self._log(self.mllogger.event, *args, **kwargs)

    def _log(
        self,
        log_fn,
        *args,
        unique: bool = True,
        unique_log_rank: int = 0,
        sync: bool = False,
        sync_group=None,
        **kwargs,
    ) -> None:
        if sync:
            self.comm_handler.barrier(sync_group)
        if not unique or self.comm_handler.global_rank() == unique_log_rank:
            log_fn(*args, **{**self.default_log_kwargs, **kwargs})
