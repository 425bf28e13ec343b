"""Hostile input for the reading of NVIDIA's BERT job scripts and what the backend builds on it: variants of the
real run.sub, a30.sub and mounts.txt (compared with what bash does with them, srun recorded, never run), odd
Slurm times and image references, malformed srun probe output, odd data folders and odd MLLOG lines.

Each test asserts the behaviour bash, pyxis, enroot, Docker or sbatch would show; the defects these probes found
(20, from requirements that missed what bash dies on to a WALLTIME read unlike sbatch) are fixed. Everything runs on
copies under tmp_path; NVIDIA's checkout is only read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import bert_copy, training_backend
from pytest_mlperf import catalog
from pytest_mlperf.backends import BackendUnavailable, RunFailed
from pytest_mlperf.backends.bert_job import image_problem, job_image, walltime_minutes
from pytest_mlperf.backends.nvidia_training import config_environment
from pytest_mlperf.catalog import nvidia_bert
from pytest_mlperf.logs import ParseError
from pytest_mlperf.logs.mllog import iter_events
from pytest_mlperf.machine.datasets import BERT_CONFIG, CHECKPOINT, EVAL_FILE, BertData, shard_name
from pytest_mlperf.machine.slurm import PROBE, SlurmError, _probe_result, available

SCRIPTS = ("run.sub", "a30.sub", "mounts.txt", "run_and_time.sh", "a30-run_and_time.sh", "run_with_docker.sh")
RECORDING_SRUN = """#!/bin/sh
# srun, recorded instead of run: arguments unit-separated, one call a record.
for a in "$@"; do printf '%s\\037' "$a"; done >> "$RECORD"
printf '\\036' >> "$RECORD"
"""
TOP = "set -eux\n"  # run.sub line 18
DEFAULTS = ': "${WORK_DIR:=/workspace/bert}"\n'  # the last of run.sub's "Vars with defaults"
TRAP = "trap cleanup_preload_lustre EXIT\n"  # after run.sub's last multi-line function
NVTX_MOUNT = (
    'if [[ "${NVTX_FLAG}" -gt 0 ]]; then\n    CONT_MOUNTS="${CONT_MOUNTS},${NVMLPERF_NSIGHT_LOCATION}:/nsight"\nfi\n'
)


# ---- helpers: copies of NVIDIA's scripts, and bash running run.sub with srun recorded -----------------------------
def _scripts(bert_code: Path, folder: Path, **texts: str | bytes) -> Path:
    """The job scripts and mounts.txt copied into folder; texts replace files by name (run_sub= for run.sub)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SCRIPTS:
        key = name.replace(".", "_").replace("-", "_")
        content = texts.get(key, (bert_code / name).read_bytes())
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def _variant(bert_code: Path, anchor: str, inserted: str) -> str:
    text = (bert_code / "run.sub").read_text()
    assert anchor in text, anchor
    return text.replace(anchor, anchor + inserted, 1)


@pytest.fixture(scope="module")
def job_env(bert_code: Path) -> dict[str, str]:
    """What the backend gives run.sub for 8x8x48x1 (the config file's variables and README's), and the variables
    the variants below read."""
    env = config_environment(bert_code, catalog.load().training_config("8x8x48x1"), 1)
    env.update(
        CONT="registry.example:5000#mlperf-nvidia:language_model",
        NEXP="1",
        DATADIR="/data/train",
        DATADIR_PHASE2="/data/train",
        EVALDIR="/data/eval",
        CHECKPOINTDIR_PHASE1="/data/phase1",
        UNITTESTDIR="/data/unit",
        SLURM_JOB_NUM_NODES="8",
        SLURM_JOBID="42",
        SLURM_JOB_ID="42",
        SLURM_JOB_NODELIST="n[1-8]",
        SITE_TAG="v1",
        SITE_NODES="2",
        API_LOG_DIR="/data/api_logs",
        PRELOAD_REPORT_DIR="/data/report",
        API_LOG_TOKEN="t",
    )
    return env


def _bash_run_sub(code: Path, env: dict[str, str], tmp: Path) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """run.sub run by bash in code, srun (and a `python` a variant calls) stubbed; the recorded srun calls."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(RECORDING_SRUN)
    (bin_dir / "python").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("srun", "python"):
        (bin_dir / tool).chmod(0o755)
    record = tmp / "record"
    record.write_bytes(b"")
    full = {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(record), "LOGDIR": str(tmp / "logs")}
    proc = subprocess.run(
        ["bash", str(code / "run.sub")], cwd=code, env=full, capture_output=True, text=True, timeout=60
    )
    calls = [c.split("\x1f")[:-1] for c in record.read_bytes().decode().split("\x1e") if c]
    return proc, calls


def _training_mounts(calls: list[list[str]]) -> str:
    """The --container-mounts of run.sub's training step (srun ... run_and_time.sh)."""
    step = next(c for c in calls if c and c[-1] == "run_and_time.sh")
    return next(a.split("=", 1)[1] for a in step if a.startswith("--container-mounts="))


def _dies_on(proc: subprocess.CompletedProcess, name: str) -> bool:
    return proc.returncode != 0 and re.search(rf"\b{name}: (unbound variable|.*not set)", proc.stderr) is not None


# ---- requirements(): what bash dies without must be required --------------------------------------------------------
# name -> (anchor, inserted text, the variable bash dies without)
NEEDED = {
    "braced": (DEFAULTS, 'echo "${SITE_TAG}"\n', "SITE_TAG"),
    "bare": (DEFAULTS, "echo $SITE_TAG\n", "SITE_TAG"),
    "pattern_strip": (DEFAULTS, 'echo "${SITE_TAG#v}"\n', "SITE_TAG"),
    "case_change": (DEFAULTS, 'echo "${SITE_TAG^^}"\n', "SITE_TAG"),
    "unquoted_heredoc": (DEFAULTS, "cat <<EOF >/dev/null\n${SITE_TAG}\nEOF\n", "SITE_TAG"),
    "if_condition": (DEFAULTS, 'if [ "${SITE_TAG}" = x ]; then\n    echo x\nfi\n', "SITE_TAG"),
    "question_mark": (DEFAULTS, ': "${SITE_TAG?SITE_TAG not set}"\n', "SITE_TAG"),
    "substring": (DEFAULTS, 'echo "${SITE_TAG:0:8}"\n', "SITE_TAG"),
    "length": (DEFAULTS, 'echo "${#SITE_TAG}"\n', "SITE_TAG"),
    "arithmetic": (DEFAULTS, 'echo "$(( SITE_NODES * 2 ))"\n', "SITE_NODES"),
    "echo_name_equals": (DEFAULTS, "echo SITE_TAG=$SITE_TAG\n", "SITE_TAG"),
    "assigned_only_in_an_if": (
        DEFAULTS,
        'if [ "${SITE_MODE:-}" = x ]; then SITE_TAG=1; fi\necho "${SITE_TAG}"\n',
        "SITE_TAG",
    ),
    "read_before_its_default": (TOP, 'echo "API logs go to ${API_LOG_DIR}"\n', "API_LOG_DIR"),
    "after_a_one_line_function": (TRAP, 'noop() { :; }\necho "${SITE_TAG}"\n', "SITE_TAG"),
    "after_multi_line_python_with_if": (
        TOP,
        "python -c '\nimport sys\nif len(sys.argv) > 5:\n    print(1)\n'\n",
        "DGXNNODES",
    ),
    "if_word_in_double_quotes": (TOP, 'echo "checking if the mounts exist"\n', "DGXNNODES"),
    "if_word_in_heredoc": (TOP, "cat <<EOF >/dev/null\nif you read this, see the README\nEOF\n", "DGXNNODES"),
    "comment_after_semicolon": (TOP, "true;# if needed\n", "DGXNNODES"),
    "function_called_at_top_level": (DEFAULTS, 'site_tag() {\n    echo "${SITE_TAG}"\n}\nsite_tag\n', "SITE_TAG"),
}


def _needed_params():
    for name in NEEDED:
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", list(NEEDED))
def test_bash_dies_without_what_each_run_sub_variant_reads(bert_code, job_env, tmp_path, name):
    """The premise of the next test: each variant runs through with every variable set and dies naming the variable
    without it (set -u, `:?`, `?`)."""
    anchor, inserted, var = NEEDED[name]
    code = _scripts(bert_code, tmp_path / "code", run_sub=_variant(bert_code, anchor, inserted))
    proc, _ = _bash_run_sub(code, job_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    proc, _ = _bash_run_sub(code, {k: v for k, v in job_env.items() if k != var}, tmp_path)
    assert _dies_on(proc, var), proc.stderr[-1500:]


@pytest.mark.parametrize("name", list(_needed_params()))
def test_requirements_name_what_bash_dies_without(bert_code, tmp_path, name):
    """Left out, the backend submits a job that dies at once (or, in run.sub's experiment loop, ends COMPLETED)."""
    anchor, inserted, var = NEEDED[name]
    code = _scripts(bert_code, tmp_path / "code", run_sub=_variant(bert_code, anchor, inserted))
    assert var in nvidia_bert.requirements(code, "run.sub", "run_and_time.sh")


# ---- requirements(): what bash never reads must not be required (the backend would refuse a good job) --------------
# name -> (run.sub text builder args, the variables bash never reads with the defaults)
NOT_NEEDED = {
    "multi_line_if": (None, None, ("NVMLPERF_NSIGHT_LOCATION",)),
    "function_with_parentheses": (
        TRAP,
        'report_preload() {\n    echo "preloaded to ${PRELOAD_REPORT_DIR}"\n}\n',
        ("PRELOAD_REPORT_DIR",),
    ),
    "one_line_if": (NVTX_MOUNT, "one-line", ("NVMLPERF_NSIGHT_LOCATION",)),
    "function_keyword": (
        TRAP,
        'function report_preload {\n    echo "preloaded to ${PRELOAD_REPORT_DIR}"\n}\n',
        ("PRELOAD_REPORT_DIR",),
    ),
    "quoted_heredoc": (TRAP, "cat <<'EOF' >/dev/null\n${PRELOAD_REPORT_DIR}\nEOF\n", ("PRELOAD_REPORT_DIR",)),
    "bash_own_variables": (TRAP, 'echo "line $LINENO after $SECONDS s as $EUID"\n', ("LINENO", "SECONDS", "EUID")),
    "read_builtin": (TRAP, 'read -r FIRST_MOUNT < mounts.txt\necho "${FIRST_MOUNT}"\n', ("FIRST_MOUNT",)),
    "required_only_in_a_false_if": (
        DEFAULTS,
        'if [ "${API_LOGGING}" -eq 1 ]; then\n    : "${API_LOG_TOKEN:?API_LOG_TOKEN not set}"\nfi\n',
        ("API_LOG_TOKEN",),
    ),
}


def _not_needed_text(bert_code: Path, name: str) -> str:
    anchor, inserted, _ = NOT_NEEDED[name]
    if anchor is None:
        return (bert_code / "run.sub").read_text()
    if inserted == "one-line":
        text = (bert_code / "run.sub").read_text()
        assert NVTX_MOUNT in text
        return text.replace(NVTX_MOUNT, NVTX_MOUNT.replace("\n    ", " ").replace("\nfi", "; fi"))
    return _variant(bert_code, anchor, inserted)


def _not_needed_params():
    for name in NOT_NEEDED:
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", list(NOT_NEEDED))
def test_bash_runs_each_variant_without_what_it_never_reads(bert_code, job_env, tmp_path, name):
    code = _scripts(bert_code, tmp_path / "code", run_sub=_not_needed_text(bert_code, name))
    gone = NOT_NEEDED[name][2]
    proc, _ = _bash_run_sub(code, {k: v for k, v in job_env.items() if k not in gone}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]


@pytest.mark.parametrize("name", list(_not_needed_params()))
def test_requirements_leave_out_what_bash_never_reads(bert_code, tmp_path, name):
    code = _scripts(bert_code, tmp_path / "code", run_sub=_not_needed_text(bert_code, name))
    need = nvidia_bert.requirements(code, "run.sub", "run_and_time.sh")
    assert not set(NOT_NEEDED[name][2]) & set(need)
    assert "/nsight" not in [m.target for m in nvidia_bert.mounts(code, "run.sub")]


# ---- requirements() against bash on generated scripts ---------------------------------------------------------------
POOL = ("HX_A", "HX_B", "HX_C")
_READS = ['echo "${{{v}}}"', "echo ${v}", 'x="${{{v}}}"', ': "${{{v}:?{v} not set}}"', 'echo "${{{v}#x}}"']
_QUIET = [
    'echo "${{{v}:-d}}"',
    'echo "${{{v}-d}}"',
    'echo "${{{v}:+a}}"',
    "echo '${{{v}}}'",
    "# uses ${{{v}}}",
    'if [ "${{HX_FLAG:-0}}" = 1 ]; then\n    echo "${{{v}}}"\nfi',
    'if [ "${{HX_FLAG:-0}}" = 1 ]; then\n    if true; then\n        echo "${{{v}}}"\n    fi\nfi',
    'f_{v}() {{\n    echo "${{{v}}}"\n}}',
    'echo "\\${{{v}}}"',
]
_STATEMENT = st.builds(
    lambda template, v: template.format(v=v), st.sampled_from(_READS + _QUIET), st.sampled_from(POOL)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.lists(_STATEMENT, min_size=1, max_size=6))
def test_requirements_of_generated_scripts_are_what_bash_dies_without(tmp_path_factory, statements):
    folder = tmp_path_factory.mktemp("gen")
    script = folder / "job.sh"
    script.write_text("set -eu\n" + "\n".join(statements) + "\n")
    base = {"PATH": "/usr/bin:/bin", **{v: "x" for v in POOL}}
    assert subprocess.run(["bash", str(script)], env=base, capture_output=True).returncode == 0
    dies = set()
    for var in POOL:
        proc = subprocess.run(
            ["bash", str(script)], env={k: v for k, v in base.items() if k != var}, capture_output=True, text=True
        )
        if _dies_on(proc, var):
            dies.add(var)
    assert set(nvidia_bert.requirements(folder, "job.sh")) == dies


# ---- mounts(): mounts.txt as run.sub hands it to pyxis ---------------------------------------------------------------
def _mounts_txt(bert_code: Path, old: str, new: str, count: int = 1) -> bytes:
    text = (bert_code / "mounts.txt").read_text()
    assert old in text
    return text.replace(old, new, count).encode()


MOUNT_FILES = {
    # name -> (builder, what run.sub then hands pyxis in --container-mounts)
    "blank_line_inside": (lambda c: _mounts_txt(c, "${CHECKPOINTDIR_PHASE1}", "\n${CHECKPOINTDIR_PHASE1}"), ",,"),
    "blank_first_line": (lambda c: b"\n" + (c / "mounts.txt").read_bytes(), "=,"),
    "indented_line": (lambda c: _mounts_txt(c, "${EVALDIR}", "  ${EVALDIR}"), ", /data/eval:"),
    "trailing_space": (lambda c: _mounts_txt(c, "/workspace/evaldata", "/workspace/evaldata "), "evaldata ,"),
    "crlf": (lambda c: (c / "mounts.txt").read_bytes().replace(b"\n", b"\r\n"), "/workspace/data\r,"),
}
# pyxis splits --container-mounts at ',' and refuses an empty entry ("invalid format") and a source that does not
# start with '.' or '/'; a target with a trailing space or CR is another folder than the one run_pretraining.py reads.
MOUNT_LINE = {
    "blank_line_inside": 3,
    "blank_first_line": 1,
    "indented_line": 4,
    "trailing_space": 4,
    "crlf": 1,
}


@pytest.mark.parametrize("name", list(MOUNT_FILES))
def test_run_sub_hands_pyxis_what_these_mounts_txt_say(bert_code, job_env, tmp_path, name):
    build, handed = MOUNT_FILES[name]
    code = _scripts(bert_code, tmp_path / "code", mounts_txt=build(bert_code))
    proc, calls = _bash_run_sub(code, job_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert handed in "=" + _training_mounts(calls)


@pytest.mark.parametrize("name", list(MOUNT_FILES))
def test_mounts_refuse_a_mounts_txt_run_sub_would_break_on(bert_code, tmp_path, name):
    code = _scripts(bert_code, tmp_path / "code", mounts_txt=MOUNT_FILES[name][0](bert_code))
    with pytest.raises(nvidia_bert.ScriptError, match=rf"mounts\.txt:{MOUNT_LINE[name]}\b"):
        nvidia_bert.mounts(code, "run.sub")


@pytest.mark.parametrize("name", ["blank_line_inside", "blank_first_line", "indented_line", "trailing_space"])
def test_run_with_docker_sh_reads_those_mounts_txt_fine(bert_code, tmp_path, name):
    """run_with_docker.sh deletes blank lines and leading spaces (sed) and word-splits: these are its five mounts."""
    code = _scripts(bert_code, tmp_path / "code", mounts_txt=MOUNT_FILES[name][0](bert_code))
    want = {m.variable: m.target for m in nvidia_bert.mounts(bert_code, "run_with_docker.sh")}
    assert {m.variable: m.target for m in nvidia_bert.mounts(code, "run_with_docker.sh")} == want


def test_mounts_txt_forms_run_sub_takes(bert_code, tmp_path):
    """Trailing blank lines (the command substitution drops them), a :ro flag, a ${VAR}/sub source, an indented
    comment (egrep keeps it: refused, naming the line)."""
    cases = {
        "trailing_blank": (bert_code / "mounts.txt").read_bytes() + b"\n\n",
        "ro": _mounts_txt(bert_code, "/workspace/evaldata", "/workspace/evaldata:ro"),
        "sub": _mounts_txt(bert_code, "${EVALDIR}", "${EVALDIR}/v1"),
    }
    found = {}
    for name, content in cases.items():
        code = _scripts(bert_code, tmp_path / name, mounts_txt=content)
        found[name] = {m.target: m.source for m in nvidia_bert.mounts(code, "run.sub")}
    assert found["trailing_blank"] == {m.target: m.source for m in nvidia_bert.mounts(bert_code, "run.sub")}
    assert found["ro"]["/workspace/evaldata"] == "${EVALDIR}"
    assert found["sub"]["/workspace/evaldata"] == "${EVALDIR}/v1"
    code = _scripts(bert_code, tmp_path / "comment", mounts_txt=_mounts_txt(bert_code, "#\n", "  # note\n"))
    with pytest.raises(nvidia_bert.ScriptError, match=r"mounts\.txt:6: "):
        nvidia_bert.mounts(code, "run.sub")


def test_a_missing_mounts_txt_is_named(bert_code, tmp_path):
    code = _scripts(bert_code, tmp_path / "code")
    (code / "mounts.txt").unlink()
    with pytest.raises(nvidia_bert.ScriptError, match=r"mounts\.txt: missing"):
        nvidia_bert.requirements(code, "run.sub", "run_and_time.sh")


@pytest.mark.parametrize("script", ["run.sub", "run_with_docker.sh"])
def test_an_unbraced_mount_variable_is_read(bert_code, tmp_path, script):
    code = _scripts(bert_code, tmp_path / "code", mounts_txt=_mounts_txt(bert_code, "${EVALDIR}", "$EVALDIR"))
    assert {m.variable: m.target for m in nvidia_bert.mounts(code, script)}["EVALDIR"] == "/workspace/evaldata"


def test_every_variable_of_a_mount_source_is_required(bert_code, tmp_path):
    code = _scripts(
        bert_code, tmp_path / "code", mounts_txt=_mounts_txt(bert_code, "${EVALDIR}", "${EVALDIR}/${EVALSUB}")
    )
    assert "EVALSUB" in nvidia_bert.requirements(code, "run.sub", "run_and_time.sh")


@pytest.mark.parametrize(
    ("old", "new"), [("${DATADIR_PHASE2}:", "$DATADIR_PHASE2:"), ("${EVALDIR}:", "${EVALDIR}/v1:")]
)
def test_every_volume_of_a30_sub_is_a_mount(bert_code, tmp_path, old, new):
    text = (bert_code / "a30.sub").read_text()
    assert f'"--volume={old}' in text
    code = _scripts(bert_code, tmp_path / "code", a30_sub=text.replace(f'"--volume={old}', f'"--volume={new}'))
    targets = [m.target for m in nvidia_bert.mounts(code, "a30.sub")]
    assert targets == [m.target for m in nvidia_bert.mounts(bert_code, "a30.sub")]


def test_a_one_line_function_hides_no_mount(bert_code, tmp_path):
    code = _scripts(bert_code, tmp_path / "code", run_sub=_variant(bert_code, TRAP, "noop() { :; }\n"))
    assert "/results" in [m.target for m in nvidia_bert.mounts(code, "run.sub")]


# ---- the backend: a mounts.txt it cannot read is a clear refusal, not a traceback ------------------------------------
def _full_copy(bert_code: Path, folder: Path, **texts: str | bytes) -> Path:
    return _scripts(bert_code, bert_copy(bert_code, folder), **texts)


def test_docker_backend_refuses_an_unreadable_mounts_txt_clearly(bert_code, tmp_path, monkeypatch):
    monkeypatch.delenv("UNITTESTDIR", raising=False)
    bad = _mounts_txt(bert_code, "${EVALDIR}", "EVALDIR")  # pyxis: a source must start with '.' or '/'
    code = _full_copy(bert_code, tmp_path / "code", mounts_txt=bad)
    with pytest.raises((BackendUnavailable, RunFailed), match=r"mounts\.txt:4"):
        training_backend(code, tmp_path, "1x8x56x1").mounts()


def test_slurm_backend_refuses_an_unreadable_mounts_txt_clearly(bert_code, tmp_path, monkeypatch):
    if available() is not None:
        pytest.skip("the Slurm client commands are not installed")
    monkeypatch.delenv("UNITTESTDIR", raising=False)
    bad = _mounts_txt(bert_code, "${EVALDIR}", "EVALDIR")
    code = _full_copy(bert_code, tmp_path / "code", mounts_txt=bad)
    with pytest.raises((BackendUnavailable, RunFailed), match=r"mounts\.txt:4"):  # at construction, before any job
        backend = training_backend(
            code, tmp_path, "8x8x48x1", launcher="slurm", image="nvcr.io/nvidia/pytorch:22.09-py3"
        )
        backend.check_submission(backend.job_environment("t1"))


def test_a_relative_unittestdir_is_named_as_relative(bert_code, tmp_path, monkeypatch):
    monkeypatch.setenv("UNITTESTDIR", "relative/unit")
    backend = training_backend(bert_code, tmp_path, "1x8x56x1")
    try:
        volumes = backend.mounts()
    except BackendUnavailable as exc:
        assert "relative/unit" in str(exc) and "not set" not in str(exc)
    else:
        assert volumes["/workspace/unit_test_data"].is_absolute()


# ---- walltime_minutes(): sbatch --time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("00:00:30", 1),
        ("  45 ", 45),
        ("01:15:00", 75),
        ("1-00:00:00", 1440),
        ("1-0", 1440),
        ("0", 0),
        ("1-2", 1560),
        ("1-02:30", 1590),
        ("10:30", 11),
        ("0:30", 1),
    ],
)
def test_walltime_as_sbatch_reads_it(text, minutes):
    assert walltime_minutes(text) == minutes


@pytest.mark.parametrize("text", ["1:2:3:4", "2-x", "1:x", "-", "1--1"])
def test_walltime_that_is_not_a_slurm_time_is_refused(text):
    with pytest.raises(ValueError, match="is not a Slurm time"):
        walltime_minutes(text)


def test_walltime_minus_one_is_not_one_minute():
    try:
        minutes = walltime_minutes("-1")
    except ValueError:
        return
    assert minutes in (None, 0)


def test_a_walltime_no_slurm_can_hold_is_refused():
    with pytest.raises(ValueError):
        walltime_minutes("99999999999999999999")


# ---- image_problem(): references pyxis/enroot or docker run would refuse ---------------------------------------------
@pytest.mark.parametrize(
    ("image", "script"),
    [
        ("nvcr.io/", "run.sub"),
        ("nvcr.io/nvidia/pytorch:", "run.sub"),
        ("nvcr.io/NVIDIA/pytorch:22.09-py3", "run.sub"),
        ("nvcr.io/NVIDIA/pytorch:22.09-py3", "a30.sub"),
        ("nvcr.io/nvidia/pytorch:22.09 py3", "run.sub"),
        ("nvcr.io/nvidia/pytorch:22.09-py3 ", "a30.sub"),
        ("nvcr.io//pytorch:22.09-py3", "a30.sub"),
        ("#", "run.sub"),
        ("nvcr.io#", "run.sub"),
        ("#nvidia/pytorch:22.09-py3", "run.sub"),
        ("nvcr.io#NVIDIA/pytorch:22.09-py3", "run.sub"),
    ],
)
def test_image_references_no_puller_takes_are_refused(image, script):
    assert image_problem(image, script) is not None


@pytest.mark.parametrize(
    ("image", "script", "ok"),
    [
        ("localhost:5000/mlperf-nvidia:language_model", "run.sub", True),
        ("nvcr.io/nvidia/pytorch:22.09-py3", "a30.sub", True),
        ("x/y/z:tag", "run.sub", False),  # x is a Docker Hub namespace
        ("", "run.sub", False),
        ("  ", "a30.sub", False),
        (" nvcr.io/nvidia/pytorch:22.09-py3", "run.sub", False),
    ],
)
def test_image_references_as_pullers_read_them(image, script, ok):
    assert (image_problem(image, script) is None) is ok
    if ok and script == "run.sub":
        assert "#" in job_image(image, script)


# ---- the srun probe's output -----------------------------------------------------------------------------------------
def _probe_here(tmp_path: Path, paths: list[str]):
    """PROBE run by bash here as node 0 of a one-node step (what srun runs on each node), read by _probe_result."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    token = ".pytest-mlperf-probe-hostile"
    (logdir / token).write_text("x")
    env = {"PATH": "/usr/bin:/bin", "SLURM_NODEID": "0", "SLURMD_NODENAME": "n1"}
    proc = subprocess.run(
        ["bash", "-c", PROBE, "probe", token, str(logdir), *paths], env=env, capture_output=True, text=True
    )
    return _probe_result(1, logdir, token, proc.stdout, proc.stderr, proc.returncode)


def test_probe_names_a_missing_path_with_spaces(tmp_path):
    found = _probe_here(tmp_path, [str(tmp_path), "/nonexistent/a b"])
    assert found.nodes == 1 and found.problems == ["/nonexistent/a b is not visible on n1"]


def test_probe_names_a_missing_path_holding_a_bar(tmp_path):
    assert _probe_here(tmp_path, ["/nonexistent/a|b"]).problems == ["/nonexistent/a|b is not visible on n1"]


def test_probe_output_that_does_not_account_for_every_node_is_an_error(tmp_path):
    token = ".t"
    for node in ("0", "1"):
        (tmp_path / f"{token}.{node}").write_text("")
    with pytest.raises(SlurmError, match="probe of 2 node"):
        _probe_result(2, tmp_path, token, "probe|0|n1\nprobe|0|n1\n", "", 0)  # one node twice
    with pytest.raises(SlurmError, match="probe of 2 node"):
        _probe_result(2, tmp_path, token, "probe|0|n1\n", "", 0)
    with pytest.raises(SlurmError, match=r"exit 1"):
        _probe_result(2, tmp_path, token, "probe|0|n1\nprobe|1|n2\n", "srun: error", 1)
    ok = _probe_result(2, tmp_path, token, "srun: warning\r\nprobe|0|n1\r\nprobe|1|n2\r\njunk\n", "", 0)
    assert ok.problems == [] and ok.nodes == 2
    (tmp_path / f"{token}.1").unlink()  # node 1 wrote into a folder of its own
    found = _probe_result(2, tmp_path, token, "probe|0|n1\nprobe|1|n2\n", "", 0)
    assert found.problems == [f"{tmp_path} (files written there do not appear on the submit host) is not visible on n2"]


# ---- BertData -------------------------------------------------------------------------------------------------------
def _ready(root: Path, count: int) -> BertData:
    data = BertData(root)
    folder = data.shards_dir(count)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / shard_name(i, count)).write_bytes(b"x")
    data.eval_dir.mkdir(parents=True, exist_ok=True)
    (data.eval_dir / EVAL_FILE).write_bytes(b"x")
    data.phase1_dir.mkdir(parents=True, exist_ok=True)
    (data.phase1_dir / CHECKPOINT).write_bytes(b"x")
    (data.phase1_dir / BERT_CONFIG).write_text('{"hidden_size": 1024}')
    return data


def test_odd_entries_of_the_shards_folder_are_named(tmp_path):
    data = _ready(tmp_path / "bert", 2048)
    assert data.problems() == []
    folder = data.train_dir
    (folder / shard_name(1, 2048)).unlink()
    (folder / shard_name(1, 2048)).symlink_to(folder / "nowhere")  # dangling: missing
    (folder / shard_name(2, 2048)).unlink()
    (tmp_path / "empty").write_bytes(b"")
    (folder / shard_name(2, 2048)).symlink_to(tmp_path / "empty")  # to an empty file: empty
    (folder / shard_name(3, 2048)).unlink()
    (folder / shard_name(3, 2048)).symlink_to("/dev/zero")  # not a regular file: missing
    (folder / shard_name(4, 2048)).unlink()
    (folder / shard_name(4, 2048)).mkdir()  # a folder: missing
    (folder / "part_00000_of_02048.hdf5.tmp").write_bytes(b"x")
    (folder / "part_02048_of_02048.hdf").write_bytes(b"x")  # index == count
    (folder / shard_name(5, 2048, "hdf5")).write_bytes(b"x")  # twice
    problems = "\n".join(data.problems())
    missing = "2045 of 2048 training shards; missing part_00001_of_02048.hdf, part_00003_of_02048.hdf, part_00004_of"
    assert missing in problems
    assert "1 empty shard file(s): part_00002_of_02048.hdf" in problems
    assert "part_00000_of_02048.hdf5.tmp, part_02048_of_02048.hdf" in problems
    assert "present both as .hdf and as .hdf5" in problems
    assert data.preparation_would_help()


@pytest.mark.parametrize("config", ["null", "[1, 2]", "1", '"bert"'])
def test_a_bert_config_that_is_not_an_object_is_not_ready(tmp_path, config):
    data = _ready(tmp_path / "bert", 2048)
    (data.phase1_dir / BERT_CONFIG).write_text(config)
    assert any(BERT_CONFIG in p for p in data.problems())


def test_a_folder_named_like_a_4320_shard_does_not_hide_a_complete_2048_set(tmp_path):
    data = _ready(tmp_path / "bert", 2048)
    data.shards_dir(4320).mkdir(parents=True)
    (data.shards_dir(4320) / shard_name(0, 4320)).mkdir()
    assert data.shard_count == 2048 and data.problems() == [] and not data.preparation_would_help()


def test_an_unreadable_shards_folder_is_named(tmp_path, monkeypatch):
    data = _ready(tmp_path / "bert", 2048)
    folder = os.fspath(data.shards_dir(2048))
    listdir, scandir = os.listdir, os.scandir

    def refuse(real):
        def call(path="."):
            if os.fspath(path) == folder:
                raise PermissionError(13, "Permission denied", folder)
            return real(path)

        return call

    monkeypatch.setattr(os, "listdir", refuse(listdir))  # what mode 000 does to a user who is not root
    monkeypatch.setattr(os, "scandir", refuse(scandir))
    assert any(folder in p for p in data.problems())


# ---- iter_events -----------------------------------------------------------------------------------------------------
def _events(text: str):
    return [(e.key, e.value) for e in iter_events("<log>", text)]


def test_mllog_records_in_odd_company():
    record = ':::MLLOG {"key": "a", "value": 1, "time_ms": 1}'
    assert _events(':::MLLOG {"key": "a", "value": "x :::MLLOG {\\"key\\": \\"b\\"}"}') == [
        ("a", 'x :::MLLOG {"key": "b"}')
    ]
    assert _events(record + record + "  " + record) == [("a", 1)] * 3
    assert _events("0: " + record + "\n1: " + record) == [("a", 1)] * 2
    assert _events(':::MLLOG {"key": "a", "value": "' + "x" * 2_000_000 + '"}')[0][1] == "x" * 2_000_000
    bad = {
        record + " trailing": "text after an MLLOG record",
        ':::MLLOG {"key": "a", "value": NaN}': "non-finite number NaN",
        ':::MLLOG {"key": "a", "time_ms": 1e400}': "overflows",
        ':::MLLOG {"key": "a", "value": ' + "[" * 100_000 + "]" * 100_000 + "}": "nested too deeply",
        ":::MLLOG": "malformed MLLOG record",
        ':::MLLOG {"key": 1}': "without a key",
        ':::MLLOG {"key": "a", "metadata": [1]}': "metadata is not an object",
        ':::MLLOG {"key": "a", "key": "b"}': "twice with different values",
    }
    for text, why in bad.items():
        with pytest.raises(ParseError, match=re.escape(why)):
            _events("first line\n" + text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_RECORD = st.fixed_dictionaries(
    {"key": st.text(min_size=1, max_size=20), "value": _JSON, "time_ms": st.integers(0, 2**53)},
    optional={"metadata": st.dictionaries(st.text(max_size=8), _JSON, max_size=3)},
)


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(_RECORD, min_size=1, max_size=4), st.lists(st.sampled_from(["", " ", "  ", "\t"]), min_size=4))
def test_records_json_dumps_writes_are_read_back(records, gaps):
    """As mlperf_logging writes them (json.dumps, ASCII), several on one line with or without blanks between."""
    line = "0: " + "".join(f"{gaps[i]}:::MLLOG {json.dumps(r)}" for i, r in enumerate(records))
    events = list(iter_events("<log>", line + "\n"))
    assert [(e.key, e.value, e.time_ms) for e in events] == [(r["key"], r["value"], r["time_ms"]) for r in records]


_TOKENS = st.sampled_from(
    [":::MLLOG", " ", "{", "}", "[", "]", '"', ",", ":", "0", "1.5", "-", "e", '"key"', '"a"', "\\u", "\\", "\n", "\r"]
    + ["NaN", "true", "null", "1e999", '"time_ms"', '"metadata"', "0: "]
)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(_TOKENS, max_size=40).map("".join))
@example(':::MLLOG {"key": "a"} :::MLLOG')
@example(':::MLLOG {"key": "a", "value": "\\ud800"}')
def test_any_line_is_events_or_a_parse_error(text):
    try:
        list(iter_events("<log>", text))
    except ParseError:
        pass


def test_a_record_holding_a_unicode_line_separator_is_read():
    assert _events(':::MLLOG {"key": "submission_org", "value": "A\u2028B"}') == [("submission_org", "A\u2028B")]
