"""NVIDIA's MLPerf Training v2.1 BERT implementation (pytorch-22.09), read as data: what a job script needs set and
what it mounts, so a submission that would break on the cluster is refused before it is made.

NVIDIA's scripts run under `set -u` (run.sub: `set -eux`; a30.sub and run_with_docker.sh: `set -euxo pipefail`):
a variable they read that is unset kills them, and one left empty in a mount source makes pyxis or Docker reject
the mount. run.sub has no pipefail, so such a failure inside its experiment loop still ends the job COMPLETED.

- `requirements(code, script)`: the variables a job script (run.sub, a30.sub) and the run-and-time script it starts
  read without a default, each with where it is read: what bash reads on every run under `set -u` (bash_reads:
  quotes, here-documents, if/else branches, functions called at top level, the order of assignments), every
  variable of a mount source, and the run-and-time script's `${X:?}` guards.
- `mounts(code, script)`: the mounts a script makes, as templates (`${DATADIR}` -> /workspace/data), read from
  mounts.txt the way run.sub reads it (lines not starting with '#', joined by commas, then envsubst) plus the
  script's own (`${LOGDIR}:/results`), or from a30.sub's `--volume=` list.
- `expand(template, env)`: envsubst's expansion (an unset variable becomes empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import bash_reads

MOUNTS_FILE = "mounts.txt"
_VAR = r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))"
# a mounts.txt line: a source starting with a variable (a literal rest, more variables allowed), an absolute target,
# optional flags
_MOUNT_LINE = re.compile(rf"^({_VAR}[^:,\s]*):(/[^:,\s]*)(?::[\w+]+)?$")
# a script's own mount: ${VAR}[/rest]:/target in a line that builds its mount list
_SCRIPT_MOUNT = re.compile(rf"({_VAR}(?:/[^:\"'\s,]*)?):(/[\w/.-]*)")
_NAMES = re.compile(_VAR)


class ScriptError(ValueError):
    """A file of NVIDIA's implementation is missing or has a shape this version does not read."""


@dataclass(frozen=True)
class Mount:
    source: str  # a template: "${DATADIR}" or "${CHECKPOINTDIR}/sub"
    target: str  # the path inside the container
    variable: str  # the variable the source starts with
    origin: str  # "mounts.txt:5", "run.sub:162"

    @property
    def variables(self) -> list[str]:
        """Every variable of the source (envsubst empties each one that is unset)."""
        return [a or b for a, b in _NAMES.findall(self.source)]

    def expand(self, env: dict[str, str]) -> str:
        return expand(self.source, env)


def expand(template: str, env: dict[str, str]) -> str:
    """envsubst: $X and ${X} replaced by their values, unset ones by nothing."""
    return re.sub(r"\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)", lambda m: env.get(m.group(1) or m.group(2), ""), template)


def _analyze(code: Path, name: str, text: str) -> bash_reads.Analysis:
    try:
        return bash_reads.analyze(text)
    except ValueError as exc:
        raise ScriptError(f"{code / name}: {exc}") from None


def _existing(code: Path, name: str) -> Path:
    path = code / name
    if not path.is_file():
        raise ScriptError(f"{path}: missing (is {code} NVIDIA's pytorch-22.09 BERT implementation?)")
    return path


def _script(code: Path, name: str) -> tuple[str, bash_reads.Analysis]:
    """A script's text (lines joined by newlines) and what bash reads of it."""
    text = "\n".join(_existing(code, name).read_text(errors="replace").splitlines())
    return text, _analyze(code, name, text)


def mounts(code: Path, script: str) -> list[Mount]:
    """The mounts the job script gives the training step: mounts.txt's (when the script reads it) and its own."""
    return _mounts_of(code, script, *_script(code, script))


def _mounts_of(code: Path, script: str, text: str, analysis: bash_reads.Analysis) -> list[Mount]:
    found: list[Mount] = []
    if MOUNTS_FILE in text and "func_get_container_mounts" in text:
        found += _mounts_txt(code, strict=script != "run_with_docker.sh")
    # the commands every run runs: a mount in an if-body is not always made
    for start, end in analysis.spans:
        command = text[start:end]
        if not any(w in command for w in ("CONT_MOUNTS", "--volume", "_cont_mounts")):
            continue
        for match in _SCRIPT_MOUNT.finditer(command):
            variable = match.group(2) or match.group(3)
            number = text.count("\n", 0, start + match.start()) + 1
            found.append(Mount(match.group(1), match.group(4), variable, f"{script}:{number}"))
    return found


def docker_mounts(code: Path) -> list[Mount]:
    """The mounts run_with_docker.sh makes: mounts.txt's lines (it drops blank lines and leading spaces itself)."""
    return _mounts_txt(code, strict=False)


def _mounts_txt(code: Path, strict: bool) -> list[Mount]:
    """mounts.txt's lines. run.sub hands them to pyxis as they are (lines starting with '#' dropped, the rest joined
    with commas), so there a blank line between mounts, surrounding spaces or a carriage return break the mount
    list: `strict` refuses them. run_with_docker.sh drops blank lines and leading spaces itself."""
    path = _existing(code, MOUNTS_FILE)
    raw = path.read_bytes().decode(errors="replace").split("\n")  # a carriage return stays, as run.sub keeps it
    last = max((n for n, line in enumerate(raw, start=1) if line.strip()), default=0)
    found: list[Mount] = []
    for number, line in enumerate(raw, start=1):
        if line.startswith("#") or (not line.strip() and (not strict or number > last)):
            continue
        if strict and (line != line.strip() or "\r" in line or not line):
            why = "a blank line" if not line.strip() else "spaces or a carriage return around the mount"
            raise ScriptError(f"{path}:{number}: {why}; run.sub hands every line but '#' ones to pyxis as it is")
        match = _MOUNT_LINE.match(line.strip())
        if not match:
            raise ScriptError(f"{path}:{number}: not a ${{VAR}}[/path]:/target mount: {line.strip()!r}")
        variable = match.group(2) or match.group(3)
        found.append(Mount(match.group(1), match.group(4), variable, f"{MOUNTS_FILE}:{number}"))
    return found


def requirements(code: Path, script: str, run_and_time: str | None = None) -> dict[str, str]:
    """Variable -> where the job reads it without a default (file:line, and why): what the job script reads under
    set -u on every run, every variable of its mount sources, and what the run-and-time script guards with `:?`
    (it runs without set -u)."""
    need: dict[str, str] = {}
    text, analysis = _script(code, script)
    for name, ref in analysis.required.items():
        how = f"${{{name}{ref.op}}}" if "?" in ref.op else "read under set -u"
        need[name] = f"{script}:{ref.line} ({how})"
    for mount in _mounts_of(code, script, text, analysis):
        for variable in mount.variables:
            need.setdefault(variable, f"{mount.origin} (mount source {mount.source}:{mount.target})")
    if run_and_time:
        for name, ref in _script(code, run_and_time)[1].required.items():
            if "?" in ref.op:
                need.setdefault(name, f"{run_and_time}:{ref.line} (${{{name}{ref.op}}})")
    return need


def preload_folder(code: Path, script: str) -> str | None:
    """Where run.sub imports the image to when CONTAINER_PRELOAD_LUSTRE is on (`enroot import --output` into a
    fixed cluster path): the folder, or None when the script has no such step."""
    for line in _existing(code, script).read_text(errors="replace").splitlines():
        match = re.search(r'CONT_FILE="(/[^"$]+)/\$\{SLURM_JOBID\}', line)
        if match and "enroot" not in line:
            return match.group(1)
    return None


def trial_log_glob(datestamp: str, index: int) -> str:
    """run.sub names experiment <index>'s log <LOGDIR>/<LOG_BASE>_<index>.log, where LOG_BASE is the DATESTAMP or,
    with TIME_TAGS/NVTX_FLAG/SYNTH_DATA/EPOCH_PROF/DISABLE_CG, a longer name holding it; a30.sub uses the
    DATESTAMP. (`seq -w 1 NEXP` pads the index to NEXP's width.)"""
    return f"*{datestamp}*_{index}.log"
