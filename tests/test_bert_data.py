"""BertData's check of the prepared BERT data against the layout NVIDIA's own scripts leave (MLPerf Training
v2.1, bert/implementations/pytorch-22.09/input_preprocessing), with tiny sizes:

- the real prepare_data.sh, run end to end with --skip-download --shards 2048 (4320 takes twice as long);
- the real generate_packing_strategy.py and create_packed_trainset.py of packed_data/, 2048 shards;
- 4320-shard trees whose names come from the scripts' own source (the name expressions of their write calls, the
  paths in prepare_data.sh) and from the .chk lists.

Stand-ins, for the two steps that need TensorFlow or PyTorch only: a python3 first on PATH writes tiny files
where create_pretraining_data.py (text to fixed-length samples) and convert_tf_checkpoint.py would, and runs
every other script with this interpreter unchanged but for one argument: pick_eval_samples.py picks 16 samples
rather than 10000 (it would take half a minute; the names do not change). tqdm, a progress bar, is a
pass-through when it is not installed.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from string import Template
from types import CodeType, SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from pytest_mlperf.machine.datasets import EVAL_FILE, BertData, ShardScan, shard_index

STANDIN_PYTHON = '''\
"""python3 for NVIDIA's BERT preparation in tests: tiny stand-ins for the steps that need TensorFlow or PyTorch;
every other script runs with this interpreter as it is (pick_eval_samples.py picking 16 samples, not 10000)."""
import os
import sys

script, args = os.path.basename(sys.argv[1]), sys.argv[2:]


def value(flag):
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag:
            return args[i + 1]


if script == "create_pretraining_data.py":  # writes <output_file>.hdf5 (its line 109), fixed-length samples
    import h5py
    import numpy as np

    # 2 samples a shard plus 1 that chop_hdf5_files.py drops: with fewer samples a shard than shards, most
    # other counts make it overflow (IndexError at its line 119)
    n = 16 if os.path.basename(value("--input_file")) == "eval.txt" else 2 * int(os.environ["STANDIN_SHARDS"]) + 1
    mask = (np.arange(512) < 8 + np.arange(n)[:, None] % 5).astype("i1")
    positions = np.zeros((n, 76), "i2")
    positions[:, :2] = (1, 3)
    with h5py.File(value("--output_file") + ".hdf5", "w") as f:
        f["input_ids"] = (mask * (100 + np.arange(n)[:, None])).astype("i2")
        f["input_mask"] = mask
        f["segment_ids"] = np.zeros((n, 512), "i1")
        f["masked_lm_positions"] = positions
        f["masked_lm_ids"] = positions * 7
        f["next_sentence_labels"] = (np.arange(n) % 2).astype("i1")
elif script == "convert_tf_checkpoint.py":
    with open(value("--output_checkpoint"), "wb") as f:
        f.write(b"tiny checkpoint")
else:
    argv = [a.replace("--num_examples_to_pick=10000", "--num_examples_to_pick=16") for a in sys.argv[1:]]
    os.execv(sys.executable, [sys.executable, *argv])
'''


# ---- names from the scripts' source ------------------------------------------------------------------------
def written_name(script: Path, **names: object) -> str:
    """The name a script writes its output to: the first argument of its one h5py.File(..., 'w') or
    open(..., 'w') call, evaluated with `names` standing for the script's variables."""
    return eval(write_target(script), {}, dict(names))


@functools.cache
def write_target(script: Path) -> CodeType:
    calls = [
        node
        for node in ast.walk(ast.parse(script.read_text()))
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) in ("h5py.File", "open")
        and len(node.args) == 2
        and ast.unparse(node.args[1]) in ("'w'", '"w"')
    ]
    assert len(calls) == 1, f"{script}: {len(calls)} write calls"
    return compile(ast.Expression(calls[0].args[0]), str(script), "eval")


def prepare_data_calls(bert_code: Path) -> dict[str, dict[str, str]]:
    """The python3 calls of prepare_data.sh that are not commented out: script name -> {flag: value}."""
    text = re.sub(r"\\\s*\n", " ", (bert_code / "input_preprocessing" / "prepare_data.sh").read_text())
    calls = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["python3"]:
            pairs = [w.split("=", 1) if "=" in w else [w] for w in words[2:]]
            flat = [part for pair in pairs for part in pair]
            calls[Path(words[1]).name] = dict(zip(flat[::2], flat[1::2], strict=True))
    return calls


def chk_names(bert_code: Path, name: str) -> list[str]:
    return [line.split("\t")[0] for line in (bert_code / "input_preprocessing" / name).read_text().splitlines()]


def named_tree(bert_code: Path, root: Path, count: int, names: list[str]) -> BertData:
    """Training shards called `names` (tiny, non-empty), the eval set, the phase-1 checkpoint and the model config,
    each where prepare_data.sh puts it for --outputdir root --shards count."""
    calls = prepare_data_calls(bert_code)

    def where(key: str, flag: str) -> Path:
        return Path(Template(calls[key][flag]).substitute(DATADIR=root, SHARDS=count))

    shards = where("shuffle_samples_write.py", "--output_hdf5")
    shards.mkdir(parents=True, exist_ok=True)
    for name in names:
        (shards / name).write_bytes(b"\x89HDF tiny")
    for path in (
        where("convert_fixed2variable.py", "--output_hdf5_file"),
        where("convert_tf_checkpoint.py", "--output_checkpoint"),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"tiny")
    where("convert_tf_checkpoint.py", "--bert_config_path").write_text('{"hidden_size": 1024}')
    data = BertData(root)
    assert shards == data.shards_dir(count)
    return data


def script_names(bert_code: Path, folder: Path, count: int) -> list[str]:
    """What shuffle_samples_write.py calls the shards it writes into folder, and shuffle_samples.py its plans."""
    scripts = bert_code / "input_preprocessing"
    args = SimpleNamespace(output_hdf5=str(folder))
    paths = [written_name(scripts / "shuffle_samples_write.py", args=args, i=i, num_shards=count) for i in range(count)]
    paths += [written_name(scripts / "shuffle_samples.py", args=args, ofile_idx=i) for i in range(count)]
    assert {Path(p).parent for p in paths} == {folder}
    return [Path(p).name for p in paths]


# ---- running the real scripts -------------------------------------------------------------------------------
def script_env(folder: Path) -> dict[str, str]:
    """PATH with the stand-in python3 first; tqdm a pass-through when absent."""
    (folder / "bin").mkdir(parents=True)
    (folder / "standin_python.py").write_text(STANDIN_PYTHON)
    python3 = folder / "bin" / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{folder / "standin_python.py"}" "$@"\n')
    python3.chmod(0o755)
    env = {**os.environ, "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    if importlib.util.find_spec("tqdm") is None:
        (folder / "shim").mkdir()
        (folder / "shim" / "tqdm.py").write_text("def tqdm(iterable=None, *args, **kwargs):\n    return iterable\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder / "shim"), env.get("PYTHONPATH")]))
    return env


def many_files() -> None:
    """chop_hdf5_files.py holds every output shard open at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def run(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, preexec_fn=many_files, timeout=600)
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0 and "Traceback" not in done.stderr, f"{argv[:2]}: see {log}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def prepared_2048(bert_code, tmp_path_factory) -> Path:
    """The real prepare_data.sh --skip-download --shards 2048, from what its downloads leave: results4/ text
    (one part and eval.txt), phase1/bert_config.json and vocab.txt."""
    pytest.importorskip("h5py")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2100:
        pytest.skip("chop_hdf5_files.py opens 2048 files at once; the hard limit on open files is lower")
    work = tmp_path_factory.mktemp("prepare")
    root = work / "bert_data"
    (root / "download" / "results4").mkdir(parents=True)
    (root / "download" / "results4" / "part-00000-of-00500").write_text("Some text.\n\nMore text.\n")
    (root / "download" / "results4" / "eval.txt").write_text("Eval text.\n")
    (root / "phase1").mkdir()
    (root / "phase1" / "bert_config.json").write_text('{"hidden_size": 1024}')
    (root / "phase1" / "vocab.txt").write_text("[PAD]\n[CLS]\n[SEP]\n")
    env = {**script_env(work), "STANDIN_SHARDS": "2048"}
    script = bert_code / "input_preprocessing" / "prepare_data.sh"
    run(["bash", str(script), "--skip-download", "--shards", "2048", "--outputdir", str(root)], env, work, work / "log")
    return root


@pytest.fixture(scope="module")
def packed_2048(bert_code, tmp_path_factory) -> tuple[BertData, Path]:
    """The real generate_packing_strategy.py and create_packed_trainset.py with --shards_num 2048 and the paths
    prepare_packed_data.sh gives them, on per-seqlen sets of 2 x 2048 sequences of 256 tokens. Returns the data
    and the folder create_packed_trainset.py ran in (prepare_packed_data.sh runs it from
    input_preprocessing/packed_data)."""
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    if importlib.util.find_spec("scipy") is None:
        pytest.skip("generate_packing_strategy.py needs scipy (pip install scipy)")
    work = tmp_path_factory.mktemp("packed")
    per_seqlen, ran_in = work / "bert_data" / "per_seqlen", work / "input_preprocessing" / "packed_data"
    for folder in (per_seqlen, ran_in, work / "bert_data" / "packed_data"):  # prepare_packed_data.sh makes no
        folder.mkdir(parents=True)  # packed_data/, and generate_packing_strategy.py's open() needs it
    for length in range(1, 513):  # what gather_per_seqlength_data.py leaves
        n = 2 * 2048 if length == 256 else 0
        with h5py.File(per_seqlen / f"train_sentences_{length:03}.hdf5", "w") as f:
            f["input_ids"] = f["input_mask"] = (np.arange(512) < length).astype("i2") * np.ones((n, 1), "i2")
            f["segment_ids"] = np.zeros((n, 512), "i1")
            f["masked_lm_positions"] = f["masked_lm_ids"] = np.zeros((n, 76), "i2")
            f["next_sentence_labels"] = np.zeros(n, "i1")
    env, scripts = script_env(work), bert_code / "input_preprocessing" / "packed_data"
    data = BertData(work / "bert_data")
    run(
        [sys.executable, str(scripts / "generate_packing_strategy.py"), "--input_hdf5", str(per_seqlen)]
        + ["--output_hdf5", str(data.packed_dir), "--max_seq_length", "512", "--max_seq_per_sample", "3"]
        + ["--shards_num", "2048"],
        env,
        ran_in,
        work / "generate.log",
    )
    run(
        [sys.executable, str(scripts / "create_packed_trainset.py"), "--input_hdf5", str(per_seqlen)]
        + ["--assignment_file", str(data.packed_dir), "--output_hdf5", str(data.packed_dir)],
        env,
        ran_in,
        work / "create.log",
    )
    return data, ran_in


# ---- the real preparation ------------------------------------------------------------------------------------
def test_what_the_real_prepare_data_sh_leaves_is_ready(prepared_2048, bert_code):
    data = BertData(prepared_2048)
    assert data.problems() == []
    assert (
        data.shard_count == 2048 and data.train_dir == prepared_2048 / "hdf5/training-2048/hdf5_2048_shards_varlength"
    )
    written = sorted(p.name for p in data.train_dir.iterdir())
    shards = [name for name in written if name.startswith("part_")]
    assert {Path(name).suffix for name in shards} == {".hdf"}  # shuffle_samples_write.py's extension
    assert [Path(n).stem for n in shards] == [Path(n).stem for n in chk_names(bert_code, "2048_shards_varlength.chk")]
    assert written == sorted(script_names(bert_code, data.train_dir, 2048))  # the names read from the source
    assert [data.eval_dir / n for n in chk_names(bert_code, "eval_varlength.chk")] == [
        p for p in data.eval_dir.iterdir()
    ]


def test_a_shard_of_the_real_preparation_missing_or_twice_is_named(prepared_2048, tmp_path):
    root = tmp_path / "bert_data"
    shutil.copytree(prepared_2048 / "hdf5" / "eval_varlength", root / "hdf5" / "eval_varlength")
    shutil.copytree(prepared_2048 / "phase1", root / "phase1")
    shutil.copytree(
        prepared_2048 / "hdf5" / "training-2048" / "hdf5_2048_shards_varlength", BertData(root).shards_dir(2048)
    )
    data = BertData(root)
    (data.train_dir / "part_00007_of_02048.hdf").unlink()
    shutil.copy(data.train_dir / "part_00008_of_02048.hdf", data.train_dir / "part_00008_of_02048.hdf5")
    assert data.problems() == [
        f"{data.train_dir}: 2047 of 2048 training shards; missing part_00007_of_02048.hdf",
        f"{data.train_dir}: 1 shard(s) present both as .hdf and as .hdf5; run_pretraining.py reads every file whose "
        "name contains 'part_', so each would be trained on twice: part_00008_of_02048.hdf/.hdf5",
    ]
    assert data.preparation_would_help()  # a missing shard: prepare_data.sh makes it
    shutil.copy(data.train_dir / "part_00006_of_02048.hdf", data.train_dir / "part_00007_of_02048.hdf")
    assert len(data.problems()) == 1 and not data.preparation_would_help()  # a duplicate is the user's to remove


# ---- trees named from the scripts and the .chk lists -----------------------------------------------------------
def test_4320_shards_named_as_shuffle_samples_write_py_names_them_are_ready(bert_code, tmp_path):
    root = tmp_path / "bert_data"
    names = script_names(bert_code, BertData(root).shards_dir(4320), 4320)
    assert names[:1] == ["part_00000_of_04320.hdf"] and names[-1] == "shard_list_04319.lst"
    data = named_tree(bert_code, root, 4320, names)
    assert data.problems() == [] and data.shard_count == 4320


@pytest.mark.parametrize(("count", "chk"), [(4320, "4320_shards_varlength.chk"), (2048, "2048_shards_varlength.chk")])
def test_shards_named_as_the_chk_lists_name_them_are_ready(bert_code, tmp_path, count, chk):
    names = chk_names(bert_code, chk)
    assert len(names) == count and names[0] == f"part_00000_of_{count:05d}.hdf5"
    data = named_tree(bert_code, tmp_path / "bert_data", count, names)
    assert data.problems() == [] and data.train_dir == data.shards_dir(count)
    assert chk_names(bert_code, "eval_varlength.chk") == ["part_eval_10k.hdf5"]


def test_the_4320_set_is_preferred_and_an_empty_4320_folder_does_not_hide_2048(bert_code, tmp_path):
    data = BertData(tmp_path / "bert_data")
    assert data.train_dir == data.shards_dir(4320)
    assert data.base_problems()[0] == (
        f"{data.shards_dir(4320)}: no training shards folder (prepare_data.sh writes 4320 part_NNNNN_of_04320.hdf "
        f"there; with --shards 2048, into {data.shards_dir(2048)})"
    )
    named_tree(bert_code, data.root, 2048, chk_names(bert_code, "2048_shards_varlength.chk"))
    data.shards_dir(4320).mkdir(parents=True)  # as a session of the old plugin, mounting it, left it
    assert data.train_dir == data.shards_dir(2048) and data.problems() == []
    named_tree(bert_code, data.root, 4320, chk_names(bert_code, "4320_shards_varlength.chk")[:5])
    assert data.train_dir == data.shards_dir(4320)
    assert data.problems() == [
        f"{data.train_dir}: 5 of 4320 training shards; missing part_00005_of_04320.hdf5, part_00006_of_04320.hdf5, "
        "part_00007_of_04320.hdf5 and 4312 more"
    ]


def test_each_wrong_shard_and_eval_file_is_named(bert_code, tmp_path):
    root = tmp_path / "bert_data"
    names = script_names(bert_code, BertData(root).shards_dir(4320), 4320)
    data = named_tree(bert_code, root, 4320, [name for name in names if name.startswith("part_")])
    folder = data.train_dir
    for i in (3, 4, 5, 6):
        (folder / f"part_{i:05d}_of_04320.hdf").unlink()
    (folder / "part_00005_of_04320.hdf").mkdir()  # run_pretraining.py skips what is not a file: still missing
    (folder / "part_00010_of_04320.hdf").write_bytes(b"")
    (folder / "part_00011_of_04320.hdf5").write_bytes(b"\x89HDF")
    (folder / "part_00012_of_04320.hdf5").write_bytes(b"")
    for stray in ("part_04320_of_04320.hdf", "part_00001_of_02048.hdf", "part_00002_of_04320.hdf.partial"):
        (folder / stray).write_bytes(b"x")
    (folder / "part_old").mkdir()
    (data.eval_dir / "part_eval_old.hdf5").write_bytes(b"x")
    (data.eval_dir / "partition").mkdir()
    (data.eval_dir / "eval_all.hdf5").write_bytes(b"x")  # no 'part': run_pretraining.py skips it
    assert data.problems() == [
        f"{folder}: 4316 of 4320 training shards; missing part_00003_of_04320.hdf, part_00004_of_04320.hdf, "
        "part_00005_of_04320.hdf and 1 more",
        f"{folder}: 2 empty shard file(s): part_00010_of_04320.hdf, part_00012_of_04320.hdf5",
        f"{folder}: 2 shard(s) present both as .hdf and as .hdf5; run_pretraining.py reads every file whose name "
        "contains 'part_', so each would be trained on twice: part_00011_of_04320.hdf/.hdf5, "
        "part_00012_of_04320.hdf/.hdf5",
        f"{folder}: 3 file(s) that are not part_NNNNN_of_04320.hdf/.hdf5 shards but that run_pretraining.py would "
        "read as shards (their names contain 'part'): part_00001_of_02048.hdf, part_00002_of_04320.hdf.partial, "
        "part_04320_of_04320.hdf",
        f"{data.eval_dir}: 1 file(s) besides part_eval_10k.hdf5 whose names contain 'part', which run_pretraining.py "
        "would read as eval data too: part_eval_old.hdf5",
    ]


def test_missing_shards_are_named_in_the_extension_the_folder_uses(bert_code, tmp_path):
    data = named_tree(bert_code, tmp_path / "bert_data", 4320, [])
    assert data.problems() == [
        f"{data.train_dir}: 0 of 4320 training shards; missing part_00000_of_04320.hdf, part_00001_of_04320.hdf, "
        "part_00002_of_04320.hdf and 4317 more"
    ]
    named_tree(
        bert_code, data.root, 4320, ["part_00000_of_04320.hdf", "part_00001_of_04320.hdf5", "part_00002_of_04320.hdf5"]
    )
    assert data.problems()[0].endswith(
        "3 of 4320 training shards; missing part_00003_of_04320.hdf5, part_00004_of_04320.hdf5, "
        "part_00005_of_04320.hdf5 and 4314 more"
    )


def test_the_eval_set_checkpoint_and_config_are_checked_as_before(bert_code, tmp_path):
    data = named_tree(bert_code, tmp_path / "bert_data", 2048, chk_names(bert_code, "2048_shards_varlength.chk"))
    (data.eval_dir / "part_eval_10k.hdf5").unlink()
    (data.phase1_dir / "model.ckpt-28252.pt").write_bytes(b"")
    (data.phase1_dir / "bert_config.json").write_text("{not json")
    assert data.problems() == [
        f"{data.eval_dir / 'part_eval_10k.hdf5'}: missing (the 10k-sample eval set)",
        f"{data.phase1_dir / 'model.ckpt-28252.pt'}: empty (the phase-1 checkpoint)",
        f"{data.phase1_dir / 'bert_config.json'}: not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))",
    ]


# ---- what run_pretraining.py reads, from its own source ------------------------------------------------------
@functools.cache
def run_pretraining_selections(script: Path) -> tuple[CodeType, CodeType, CodeType]:
    """run_pretraining.py's training file lists (first pass: names containing 'part_'; later passes: 'part') and
    its test of an eval file (create_eval_dataset: a file whose path contains 'part')."""
    tree = ast.parse(script.read_text())
    lists = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.ListComp) and "args.input_dir" in ast.unparse(n)),
        key=lambda n: n.lineno,
    )
    (evaluate,) = (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "create_eval_dataset")
    (test,) = (n.test for n in ast.walk(evaluate) if isinstance(n, ast.If) and "eval_file_path" in ast.unparse(n.test))
    assert [ast.unparse(n).count("'part_'") for n in lists] == [1, 0]
    return tuple(compile(ast.Expression(n), str(script), "eval") for n in (*lists, test))


POOL = [
    *(f"part_{i:05d}_of_00003.{ext}" for i in range(4) for ext in ("hdf", "hdf5")),
    "part_00000_of_00004.hdf5",
    "part_00001_of_00003.hdf.tmp",
    "partial",
    "part-00000-of-00500.hdf5",
    "shard_list_00000.lst",
    "output_00000",
    "README",
]
KINDS = st.sampled_from(["file", "empty", "folder"])


def lay_out(folder: Path, entries: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, kind in entries.items():
        if kind == "folder":
            (folder / name).mkdir()
        else:
            (folder / name).write_bytes(b"x" if kind == "file" else b"")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(entries=st.dictionaries(st.sampled_from(POOL), KINDS, max_size=10))
@example(
    entries={"part_00000_of_00003.hdf": "file", "part_00001_of_00003.hdf5": "file", "part_00002_of_00003.hdf": "file"}
)
@example(
    entries={
        **{f"part_{i:05d}_of_00003.hdf": "file" for i in range(3)},
        "shard_list_00000.lst": "file",
        "part_00003_of_00003.hdf": "folder",
        "output_00000": "file",
    }
)
@example(entries={**{f"part_{i:05d}_of_00003.hdf": "file" for i in range(3)}, "partial": "empty"})
def test_shards_and_strays_are_what_run_pretraining_py_reads(bert_code, entries):
    first, later, _ = run_pretraining_selections(bert_code / "run_pretraining.py")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        lay_out(folder, entries)
        names = {
            selection: {Path(p).name for p in eval(selection, {"os": os, "args": SimpleNamespace(input_dir=folder)})}
            for selection in (first, later)
        }
        scan = ShardScan.of(folder, 3)
        shards = {p.name for files in scan.shards.values() for p in files.values()}
        assert names[first] <= names[later] == shards | set(scan.strays)
        indices = [shard_index(name, 3) for name in names[later]]
        ready = names[first] == names[later] and sorted(indices, key=str) == [0, 1, 2]
        ready = ready and all((folder / name).stat().st_size for name in names[later])
        assert (scan.missing("shards", "hdf") + scan.wrong() == []) == ready


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    entries=st.dictionaries(
        st.sampled_from(["part_eval_10k.hdf5", "part_eval_old.hdf5", "eval_all.hdf5", "partition", "a_part"]),
        KINDS,
        max_size=5,
    )
)
@example(entries={"part_eval_10k.hdf5": "file", "eval_all.hdf5": "file", "partition": "folder"})
def test_the_eval_check_passes_when_run_pretraining_py_reads_the_eval_set_only(bert_code, entries):
    *_, test = run_pretraining_selections(bert_code / "run_pretraining.py")
    with tempfile.TemporaryDirectory() as tmp:
        data = BertData(Path(tmp))
        lay_out(data.eval_dir, entries)
        isfile = SimpleNamespace(path=SimpleNamespace(isfile=lambda p: (data.eval_dir / Path(p).name).is_file()))
        read = [  # as in the container, where EVALDIR is /workspace/evaldata
            name
            for name in sorted(entries)
            if eval(test, {"os": isfile, "eval_file_path": f"/workspace/evaldata/{name}"})
        ]
        ready = read == [EVAL_FILE] and (data.eval_dir / EVAL_FILE).stat().st_size > 0
        problems = [p for p in data.base_problems() if p.startswith(str(data.eval_dir))]
        assert (problems == []) == ready


# ---- packed data ----------------------------------------------------------------------------------------------
def plans_problem(data: BertData, count: int, plans: int) -> str:
    return (
        f"{data.packed_dir}: {plans} shard_list_NNNNN.lst file(s) (generate_packing_strategy.py's plan) but 0 of "
        f"{count} packed shards: create_packed_trainset.py writes its shards as output_NNNNN into its working "
        "directory, not into --output_hdf5 (prepare_packed_data.sh calls it by a relative path, so from "
        "input_preprocessing/packed_data); run_pretraining.py reads only names containing 'part_': move them into "
        f"{data.packed_dir} as part_NNNNN_of_{count:05d}.hdf5"
    )


def outputs_problem(data: BertData, count: int, outputs: int, shards: int) -> str:
    return (
        f"{data.packed_dir}: {outputs} output_NNNNN file(s) and {shards} of {count} packed shards: "
        "create_packed_trainset.py writes its shards as output_NNNNN (no extension) into its working directory, and "
        "run_pretraining.py reads only names containing 'part_', so it would train on none of them; move them in as "
        f'part_NNNNN_of_{count:05d}.hdf5: cd {data.packed_dir} && for f in output_?????; do mv "$f" '
        f'"part_${{f#output_}}_of_{count:05d}.hdf5"; done'
    )


def follow(problem: str) -> None:
    """Run the command a problem ends with, as a user would paste it."""
    subprocess.run(["sh", "-c", problem.split(".hdf5: ", 1)[1]], check=True)


def test_what_the_real_packed_scripts_leave_is_named_until_moved_in(packed_2048, bert_code):
    data, ran_in = packed_2048
    outputs = sorted(p.name for p in ran_in.iterdir())
    assert len(outputs) == 2048 and outputs[0] == "output_00000"  # in the folder it ran in, not --output_hdf5
    assert {p.name[:11] for p in data.packed_dir.iterdir()} == {"shard_list_"}
    assert data.packed_problems() == [plans_problem(data, 2048, 2048)]

    for name in outputs:  # a user who found them
        shutil.move(ran_in / name, data.packed_dir / name)
    problem = outputs_problem(data, 2048, 2048, 0)
    assert data.packed_problems() == [problem]
    follow(problem)
    assert data.packed_problems() == []
    named_tree(bert_code, data.root, 2048, chk_names(bert_code, "2048_shards_varlength.chk"))
    assert data.problems(packed=True) == []


def test_4320_packed_shards_named_from_the_scripts_are_named_until_moved_in(bert_code, tmp_path):
    scripts = bert_code / "input_preprocessing" / "packed_data"
    data = named_tree(bert_code, tmp_path / "bert_data", 2048, chk_names(bert_code, "2048_shards_varlength.chk"))
    assert (
        data.problems(packed=True)
        == data.base_problems() + data.packed_problems()
        == [f"{data.packed_dir}: no packed data (the packed configs need input_preprocessing/packed_data)"]
    )
    args = SimpleNamespace(output_hdf5=str(data.packed_dir))
    plans = [Path(written_name(scripts / "generate_packing_strategy.py", args=args, shard_idx=i)) for i in range(4320)]
    data.packed_dir.mkdir()
    for plan in plans:
        plan.write_text("[]")
    assert data.problems(packed=True) == [plans_problem(data, 4320, 4320)]

    for i in range(4320):  # create_packed_trainset.py run in packed_data, as its README's last step may be
        (data.packed_dir / written_name(scripts / "create_packed_trainset.py", i=i)).write_bytes(b"\x89HDF")
    assert data.problems(packed=True) == [outputs_problem(data, 4320, 4320, 0)]
    for i in range(320, 4320):  # most moved
        (data.packed_dir / f"output_{i:05d}").rename(data.packed_dir / f"part_{i:05d}_of_04320.hdf5")
    problem = outputs_problem(data, 4320, 320, 4000)
    assert data.packed_problems() == [
        problem,
        f"{data.packed_dir}: 4000 of 4320 packed shards; missing part_00000_of_04320.hdf5, part_00001_of_04320.hdf5, "
        "part_00002_of_04320.hdf5 and 317 more",
    ]
    follow(problem)
    assert data.problems(packed=True) == []
    (data.packed_dir / "part_00001_of_04320.hdf5").rename(data.packed_dir / "output_00001")
    assert data.packed_problems() == [
        outputs_problem(data, 4320, 1, 4319),
        f"{data.packed_dir}: 4319 of 4320 packed shards; missing part_00001_of_04320.hdf5",
    ]


def test_stand_in_prepare_data_sh_names_shards_as_the_real_one(tmp_path):
    standin = ROOT / "tests" / "standin_training" / "prepare_data.sh"
    subprocess.run(["sh", str(standin), "--outputdir", str(tmp_path)], check=True, capture_output=True)
    data = BertData(tmp_path)
    assert data.problems() == []
    assert {p.suffix for p in data.train_dir.iterdir()} == {".hdf"}
    assert json.loads((data.phase1_dir / "bert_config.json").read_text())
