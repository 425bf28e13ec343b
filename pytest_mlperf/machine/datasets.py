"""Prepared data: checks of what a benchmark needs on disk, and steps that run once (stamps written last, file
locks so pytest-xdist workers never run a step twice)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STATE = ".pytest-mlperf"  # stamps and locks, beside the data they describe

BERT_SHARDS = 4320
SHARD_RE = re.compile(r"^part_(\d{5})_of_04320\.hdf5$")
EVAL_FILE = "part_eval_10k.hdf5"  # the 10,000-sample eval set
CHECKPOINT = "model.ckpt-28252.pt"
BERT_CONFIG = "bert_config.json"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (pytest-xdist workers, two sessions) that leaves no file behind: the
    holder unlinks the file before it lets go, and a waiter that wakes up holding a file no longer at the path
    tries again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fh = path.open("a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fh.fileno()).st_ino:
            break
        fh.close()  # the previous holder removed this file: lock the one at the path now
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def once(stamp: Path, step: Callable[[], None], what: str) -> bool:
    """Run step unless its stamp says it succeeded before; the stamp is written after success, under a lock.
    Returns True when the step ran."""
    with file_lock(stamp.with_suffix(".lock")):
        if stamp.exists():
            return False
        step()
        stamp.write_text(f"{what} ok {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return True


@dataclass(frozen=True)
class BertData:
    """The layout NVIDIA's prepare_data.sh leaves under its --outputdir, and the mounts run_with_docker.sh
    makes of it."""

    root: Path

    @property
    def train_dir(self) -> Path:  # DATADIR / DATADIR_PHASE2
        return self.root / "hdf5" / "training-4320" / "hdf5_4320_shards_varlength"

    @property
    def eval_dir(self) -> Path:  # EVALDIR
        return self.root / "hdf5" / "eval_varlength"

    @property
    def phase1_dir(self) -> Path:  # CHECKPOINTDIR_PHASE1
        return self.root / "phase1"

    @property
    def packed_dir(self) -> Path:  # DATADIR_PHASE2 of the packed configs
        return self.root / "packed_data"

    def problems(self, packed: bool = False) -> list[str]:
        """What is missing or wrong, each naming the path; empty when the data is ready."""
        out: list[str] = []
        if not self.train_dir.is_dir():
            out.append(f"{self.train_dir}: no training shards folder (expected {BERT_SHARDS} part_NNNNN_of_04320.hdf5)")
        else:
            present = {}
            for path in self.train_dir.iterdir():
                match = SHARD_RE.match(path.name)
                if match:
                    present[int(match.group(1))] = path
            missing = [i for i in range(BERT_SHARDS) if i not in present]
            empty = [p.name for p in present.values() if p.stat().st_size == 0]
            if missing:
                names = ", ".join(f"part_{i:05d}_of_04320.hdf5" for i in missing[:3])
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                out.append(f"{self.train_dir}: {len(present)} of {BERT_SHARDS} training shards; missing {names}{more}")
            if empty:
                out.append(f"{self.train_dir}: empty shard file(s): {', '.join(sorted(empty)[:3])}")
        out += _file_problems(self.eval_dir / EVAL_FILE, "the 10k-sample eval set")
        out += _file_problems(self.phase1_dir / CHECKPOINT, "the phase-1 checkpoint")
        config = self.phase1_dir / BERT_CONFIG
        out += _file_problems(config, "the BERT model config")
        if config.is_file() and config.stat().st_size:
            try:
                json.loads(config.read_text())
            except ValueError as exc:
                out.append(f"{config}: not valid JSON ({exc})")
        if packed and not (self.packed_dir.is_dir() and any(self.packed_dir.iterdir())):
            out.append(f"{self.packed_dir}: no packed data (the packed configs need input_preprocessing/packed_data)")
        return out


def _file_problems(path: Path, what: str) -> list[str]:
    if not path.is_file():
        return [f"{path}: missing ({what})"]
    if path.stat().st_size == 0:
        return [f"{path}: empty ({what})"]
    return []
