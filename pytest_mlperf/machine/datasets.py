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

BERT_SHARDS = 4320  # prepare_data.sh's default --shards
SHARD_COUNTS = (BERT_SHARDS, 2048)  # its other choice, "for small scales"; the first is preferred
# shuffle_samples_write.py writes part_NNNNN_of_0NNNN.hdf; the .chk lists (and hdf5_md5.py's example) name .hdf5
SHARD_RE = re.compile(r"^part_(\d{5})_of_(\d{5})\.(hdf5?)$")
SHARD_LIST_RE = re.compile(r"^shard_list_\d{5,}\.lst$")  # shuffle_samples.py's / generate_packing_strategy.py's plans
PACKED_OUTPUT_RE = re.compile(r"^output_(\d{5,})$")  # what create_packed_trainset.py writes, in its working directory
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


def shard_name(index: int, count: int, ext: str = "hdf") -> str:
    """part_00042_of_04320.hdf: the name shuffle_samples_write.py gives shard `index` of a `count`-shard set."""
    return f"part_{index:05d}_of_{count:05d}.{ext}"


def shard_index(name: str, count: int) -> int | None:
    """The index of the shard of a `count`-shard set that `name` names (.hdf or .hdf5); None for other names."""
    match = SHARD_RE.match(name)
    if match and int(match.group(2)) == count and int(match.group(1)) < count:
        return int(match.group(1))
    return None


@dataclass(frozen=True)
class ShardScan:
    """The regular files of a shards folder as run_pretraining.py sees them: it trains on every regular file whose
    name contains 'part_' (and 'part' from its second pass over the folder on); folders are skipped."""

    folder: Path
    count: int
    shards: dict[int, dict[str, Path]]  # index -> {"hdf": path, "hdf5": path}, the extensions present
    strays: list[str]  # other names run_pretraining.py would read as shards

    @classmethod
    def of(cls, folder: Path, count: int) -> ShardScan:
        shards: dict[int, dict[str, Path]] = {}
        strays: list[str] = []
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            index = shard_index(path.name, count)
            if index is not None:
                shards.setdefault(index, {})[path.suffix[1:]] = path
            elif "part" in path.name:
                strays.append(path.name)
        return cls(folder, count, shards, strays)

    def missing(self, what: str, default_ext: str) -> list[str]:
        """The absent indices, named in the extension the folder mostly uses (default_ext when it holds none)."""
        missing = [i for i in range(self.count) if i not in self.shards]
        if not missing:
            return []
        exts = [ext for files in self.shards.values() for ext in files]
        ext = default_ext if exts.count("hdf") == exts.count("hdf5") else max(("hdf", "hdf5"), key=exts.count)
        names = [shard_name(i, self.count, ext) for i in missing]
        return [f"{self.folder}: {len(self.shards)} of {self.count} {what}; missing {_listing(names)}"]

    def wrong(self) -> list[str]:
        """Empty shards, shards present under both extensions, and files that would be read as shards."""
        out = []
        empty = sorted(p.name for files in self.shards.values() for p in files.values() if p.stat().st_size == 0)
        if empty:
            out.append(f"{self.folder}: {len(empty)} empty shard file(s): {_listing(empty)}")
        twice = [shard_name(i, self.count) + "/.hdf5" for i, files in sorted(self.shards.items()) if len(files) > 1]
        if twice:
            out.append(
                f"{self.folder}: {len(twice)} shard(s) present both as .hdf and as .hdf5; run_pretraining.py reads "
                f"every file whose name contains 'part_', so each would be trained on twice: {_listing(twice)}"
            )
        if self.strays:
            out.append(
                f"{self.folder}: {len(self.strays)} file(s) that are not part_NNNNN_of_{self.count:05d}.hdf/.hdf5 "
                f"shards but that run_pretraining.py would read as shards (their names contain 'part'): "
                f"{_listing(self.strays)}"
            )
        return out


@dataclass(frozen=True)
class BertData:
    """The layout NVIDIA's prepare_data.sh leaves under its --outputdir, and the mounts run_with_docker.sh
    makes of it."""

    root: Path

    def shards_dir(self, count: int) -> Path:
        """Where prepare_data.sh --shards <count> has shuffle_samples_write.py write the training shards."""
        return self.root / "hdf5" / f"training-{count}" / f"hdf5_{count}_shards_varlength"

    @property
    def shard_count(self) -> int:
        """The --shards of the training set in use: the first of 4320 and 2048 whose folder holds a shard, else
        whose folder exists, else 4320 (prepare_data.sh's default)."""
        folders = [(count, self.shards_dir(count)) for count in SHARD_COUNTS]
        for count, folder in folders:
            files = _files(folder) or []  # run_pretraining.py reads regular files only: a folder named so is none
            if any(shard_index(p.name, count) is not None for p in files):
                return count
        return next((count for count, folder in folders if folder.is_dir()), BERT_SHARDS)

    @property
    def train_dir(self) -> Path:  # DATADIR / DATADIR_PHASE2
        return self.shards_dir(self.shard_count)

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
        return self.base_problems() + (self.packed_problems() if packed else [])

    def base_problems(self) -> list[str]:
        """The training shards, the eval set, the phase-1 checkpoint and the model config."""
        out = self._train_problems() + self._eval_problems()
        out += _file_problems(self.phase1_dir / CHECKPOINT, "the phase-1 checkpoint")
        config = self.phase1_dir / BERT_CONFIG
        out += _file_problems(config, "the BERT model config")
        if config.is_file() and config.stat().st_size:
            try:
                parsed = json.loads(config.read_text())
            except ValueError as exc:
                out.append(f"{config}: not valid JSON ({exc})")
            else:
                if not isinstance(parsed, dict):  # BertConfig.from_json_file reads an object's keys
                    out.append(f"{config}: not a JSON object (the BERT model config is one)")
        return out

    def preparation_would_help(self) -> bool:
        """Whether something prepare_data.sh makes is absent or empty (so running it again can fix it); duplicate
        or stray shard files and extra eval files are the user's to sort out, and a rerun would cost hours."""
        count = self.shard_count
        folder = self.shards_dir(count)
        if _unlistable(folder) is not None:
            return False  # a folder this user cannot read is not missing: preparing again would not help
        if not folder.is_dir():
            return True
        scan = ShardScan.of(folder, count)
        if scan.missing("", "hdf") or any(p.stat().st_size == 0 for fs in scan.shards.values() for p in fs.values()):
            return True
        needed = (self.eval_dir / EVAL_FILE, self.phase1_dir / CHECKPOINT, self.phase1_dir / BERT_CONFIG)
        return any(not path.is_file() or path.stat().st_size == 0 for path in needed)

    def _train_problems(self) -> list[str]:
        count = self.shard_count
        folder = self.shards_dir(count)
        if not folder.is_dir():
            other = self.shards_dir(SHARD_COUNTS[1])
            return [
                f"{folder}: no training shards folder (prepare_data.sh writes {count} "
                f"part_NNNNN_of_{count:05d}.hdf there; with --shards {SHARD_COUNTS[1]}, into {other})"
            ]
        if (unreadable := _unlistable(folder)) is not None:
            return [unreadable]
        scan = ShardScan.of(folder, count)
        return scan.missing("training shards", "hdf") + scan.wrong()

    def _eval_problems(self) -> list[str]:
        """run_pretraining.py evaluates on the first 10000 samples of the files in EVALDIR whose names contain
        'part', sorted: any such file but the eval set changes what is evaluated."""
        out = _file_problems(self.eval_dir / EVAL_FILE, "the 10k-sample eval set")
        if (unreadable := _unlistable(self.eval_dir)) is not None:
            return [*out, unreadable]
        if self.eval_dir.is_dir():
            others = sorted(
                p.name for p in self.eval_dir.iterdir() if p.is_file() and "part" in p.name and p.name != EVAL_FILE
            )
            if others:
                out.append(
                    f"{self.eval_dir}: {len(others)} file(s) besides {EVAL_FILE} whose names contain 'part', which "
                    f"run_pretraining.py would read as eval data too: {_listing(others)}"
                )
        return out

    def packed_problems(self) -> list[str]:
        """The packed configs' training shards: a complete set in packed_dir, named as the training shards are."""
        folder = self.packed_dir
        if (unreadable := _unlistable(folder)) is not None:
            return [unreadable]
        names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        if not names:
            return [f"{folder}: no packed data (the packed configs need input_preprocessing/packed_data)"]
        outputs = [name for name in names if PACKED_OUTPUT_RE.match(name)]
        plans = [name for name in names if SHARD_LIST_RE.match(name)]
        count = _packed_count(names, len(plans), len(outputs))
        scan = ShardScan.of(folder, count)
        out = []
        if outputs:
            out.append(_packed_outputs_problem(folder, count, len(outputs), len(scan.shards)))
        elif plans and not scan.shards:
            out.append(_packed_plans_problem(folder, count, len(plans)))
        if scan.shards or not (outputs or plans):
            out += scan.missing("packed shards", "hdf5")
        return out + scan.wrong()


def _packed_count(names: list[str], plans: int, outputs: int) -> int:
    """The shard count of a packed set: that of the shards present, else that of the plans or of
    create_packed_trainset.py's outputs, else 4320 (generate_packing_strategy.py's default)."""
    for count in SHARD_COUNTS:
        if any(shard_index(name, count) is not None for name in names):
            return count
    return next((n for n in (plans, outputs) if n in SHARD_COUNTS), BERT_SHARDS)


def _packed_outputs_problem(folder: Path, count: int, outputs: int, shards: int) -> str:
    return (
        f"{folder}: {outputs} output_NNNNN file(s) and {shards} of {count} packed shards: create_packed_trainset.py "
        f"writes its shards as output_NNNNN (no extension) into its working directory, and run_pretraining.py "
        f"reads only names containing 'part_', so it would train on none of them; move them in as "
        f"part_NNNNN_of_{count:05d}.hdf5: "
        f'cd {folder} && for f in output_?????; do mv "$f" "part_${{f#output_}}_of_{count:05d}.hdf5"; done'
    )


def _packed_plans_problem(folder: Path, count: int, plans: int) -> str:
    return (
        f"{folder}: {plans} shard_list_NNNNN.lst file(s) (generate_packing_strategy.py's plan) but 0 of {count} "
        f"packed shards: create_packed_trainset.py writes its shards as output_NNNNN into its working directory, not "
        f"into --output_hdf5 (prepare_packed_data.sh calls it by a relative path, so from input_preprocessing/"
        f"packed_data); run_pretraining.py reads only names containing 'part_': move them into {folder} as "
        f"part_NNNNN_of_{count:05d}.hdf5"
    )


def _listing(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _file_problems(path: Path, what: str) -> list[str]:
    if not path.is_file():
        return [f"{path}: missing ({what})"]
    if path.stat().st_size == 0:
        return [f"{path}: empty ({what})"]
    return []


def _files(folder: Path) -> list[Path] | None:
    """The regular files of a folder; None when it is missing or cannot be listed."""
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except OSError:
        return None


def _unlistable(folder: Path) -> str | None:
    """A problem line for a folder that exists but cannot be listed (permissions), else None."""
    try:
        if folder.is_dir():
            list(os.scandir(folder))
    except OSError as exc:
        return f"{folder}: cannot list it ({exc.strerror or exc})"
    return None
