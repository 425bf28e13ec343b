"""NVIDIA's MLPerf Training v2.1 BERT implementation (pytorch-22.09), read as data: what a job script needs set and
what it mounts, so a submission that would break on the cluster is refused before it is made.

NVIDIA's scripts run under `set -u` (run.sub: `set -eux`; a30.sub and run_with_docker.sh: `set -euxo pipefail`):
a variable they read that is unset kills them, and one left empty in a mount source makes pyxis or Docker reject
the mount. run.sub has no pipefail, so such a failure inside its experiment loop still ends the job COMPLETED.

- `requirements(code, script)`: the variables a job script (run.sub, a30.sub) and the run-and-time script it starts
  read without a default, each with where it is read: `: "${X:?...}"`, any `${X}`/`$X` outside if-blocks and
  functions that the script never assigns, and the sources of its mounts.
- `mounts(code, script)`: the mounts a script makes, as templates (`${DATADIR}` -> /workspace/data), read from
  mounts.txt the way run.sub reads it (lines not starting with '#', joined by commas, then envsubst) plus the
  script's own (`${LOGDIR}:/results`), or from a30.sub's `--volume=` list.
- `expand(template, env)`: envsubst's expansion (an unset variable becomes empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MOUNTS_FILE = "mounts.txt"
# Set by Slurm in every job, by bash, or by the login environment: never the submitter's business.
PROVIDED = re.compile(r"^(SLURM_\w+|PWD|OLDPWD|HOME|USER|HOSTNAME|RANDOM|BASH_SOURCE|BASHPID|PPID|UID|IFS)$")
_REF = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?P<op>:?[-=?+]|\[|#|%|/|:|\})?|(?P<bare>[A-Za-z_]\w*))")
_ASSIGN = re.compile(
    r"(?:^|[;&|(\s])(?:export\s+|readonly\s+|local\s+|declare(?:\s+-\w+)*\s+)?([A-Za-z_]\w*)(?:\+)?=|"
    r"\$\{([A-Za-z_]\w*):?=|"
    r"\bfor\s+([A-Za-z_]\w*)\s+in\b|"
    r"\b(?:readarray|mapfile)\s+(?:-\w+\s+)*([A-Za-z_]\w*)\s*(?:[<;]|$)|"
    r"\b(?:local|declare(?:\s+-\w+)*)\s+([A-Za-z_]\w*)\s*$"
)
_REQUIRED = re.compile(r"\$\{([A-Za-z_]\w*):\?")
_SCRIPT_MOUNT = re.compile(r"\$\{([A-Za-z_]\w*)\}:(/[\w/.-]*)")
_FUNCTION = re.compile(r"^\s*(?:function\s+)?[A-Za-z_]\w*\s*\(\)")
_MOUNT_LINE = re.compile(r"^\$\{([A-Za-z_]\w*)\}(/[^:]*)?:(/[^:,\s]*)")


class ScriptError(ValueError):
    """A file of NVIDIA's implementation is missing or has a shape this version does not read."""


@dataclass(frozen=True)
class Mount:
    source: str  # a template: "${DATADIR}" or "${CHECKPOINTDIR}/sub"
    target: str  # the path inside the container
    variable: str  # the variable the source starts with
    origin: str  # "mounts.txt:5", "run.sub:162"

    def expand(self, env: dict[str, str]) -> str:
        return expand(self.source, env)


def expand(template: str, env: dict[str, str]) -> str:
    """envsubst: $X and ${X} replaced by their values, unset ones by nothing."""
    return re.sub(r"\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)", lambda m: env.get(m.group(1) or m.group(2), ""), template)


def _read(code: Path, name: str) -> list[str]:
    path = code / name
    if not path.is_file():
        raise ScriptError(f"{path}: missing (is {code} NVIDIA's pytorch-22.09 BERT implementation?)")
    return path.read_text(errors="replace").splitlines()


def mounts(code: Path, script: str) -> list[Mount]:
    """The mounts the job script gives the training step."""
    lines = _read(code, script)
    found: list[Mount] = []
    text = "\n".join(lines)
    if MOUNTS_FILE in text and "func_get_container_mounts" in text:
        for number, line in enumerate(_read(code, MOUNTS_FILE), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            match = _MOUNT_LINE.match(line.strip())
            if not match:
                raise ScriptError(f"{code / MOUNTS_FILE}:{number}: not a ${{VAR}}:/path mount: {line.strip()!r}")
            source = f"${{{match.group(1)}}}{match.group(2) or ''}"
            found.append(Mount(source, match.group(3), match.group(1), f"{MOUNTS_FILE}:{number}"))
    depths = _depths(lines)
    for number, line in enumerate(lines, start=1):
        code_part = _code_part(line)
        if depths[number - 1] != (0, 0) or not any(w in code_part for w in ("CONT_MOUNTS", "--volume", "_cont_mounts")):
            continue
        for match in _SCRIPT_MOUNT.finditer(code_part):
            found.append(Mount(f"${{{match.group(1)}}}", match.group(2), match.group(1), f"{script}:{number}"))
    return found


def _depths(lines: list[str]) -> list[tuple[int, int]]:
    """For each line, (if-depth, 1 inside a function body else 0) as it starts: lines inside an if-block or a
    function run only sometimes, so what they read is not required of every submission."""
    out: list[tuple[int, int]] = []
    ifs, in_function, brace, opened = 0, False, 0, False
    for line in lines:
        out.append((ifs, int(in_function)))
        code = _code_part(line)
        words = re.findall(r"(?:^|[;\s(])(if|fi)\b", code)
        ifs = max(0, ifs + words.count("if") - words.count("fi"))
        net = code.count("{") - code.count("}")
        if not in_function and _FUNCTION.match(code):
            in_function, brace = True, net
            opened = brace > 0
        elif in_function:
            brace += net
            opened = opened or brace > 0
        if in_function and opened and brace <= 0:
            in_function = False
    return out


def _code_part(line: str) -> str:
    """The line without its comment and without single-quoted text outside double quotes (no expansion there)."""
    out, quote, index = [], "", 0
    while index < len(line):
        char = line[index]
        if quote == "'":
            if char == "'":
                quote = ""
            index += 1
            continue
        if char == "\\":
            out.append(line[index : index + 2])
            index += 2
            continue
        if char == '"':
            quote = "" if quote == '"' else '"'
        elif char == "'" and not quote:
            quote = "'"
            index += 1
            continue
        elif char == "#" and not quote and (index == 0 or line[index - 1].isspace()):
            break
        out.append(char)
        index += 1
    return "".join(out)


def requirements(code: Path, script: str, run_and_time: str | None = None) -> dict[str, str]:
    """Variable -> where the job reads it without a default (file:line, and why)."""
    lines = _read(code, script)
    assigned = _assigned(lines)
    need: dict[str, str] = {}
    depths = _depths(lines)
    for number, line in enumerate(lines, start=1):
        code_part = _code_part(line)
        for name in _REQUIRED.findall(code_part):
            if name not in assigned:  # `${CONT_FILE:?...}` in run.sub guards a variable it gave a default
                need.setdefault(name, f"{script}:{number} (${{{name}:?}})")
        if depths[number - 1] != (0, 0):
            continue
        for match in _REF.finditer(code_part.replace("\\$", "")):
            name = match.group("braced") or match.group("bare")
            op = match.group("op") or ""
            if op[:2] in (":-", ":=", ":+", ":?") or op[:1] in ("-", "=", "+", "?") or op == ":":
                continue
            if name in assigned or PROVIDED.match(name):
                continue
            need.setdefault(name, f"{script}:{number} (read under set -u)")
    for mount in mounts(code, script):
        need.setdefault(mount.variable, f"{mount.origin} (mount source {mount.source}:{mount.target})")
    if run_and_time:
        for number, line in enumerate(_read(code, run_and_time), start=1):
            for name in _REQUIRED.findall(_code_part(line)):
                need.setdefault(name, f"{run_and_time}:{number} (${{{name}:?}})")
    return need


def _assigned(lines: list[str]) -> set[str]:
    names: set[str] = set()
    for line in lines:
        for match in _ASSIGN.finditer(_code_part(line)):
            names.update(g for g in match.groups() if g)
    return names


def preload_folder(code: Path, script: str) -> str | None:
    """Where run.sub imports the image to when CONTAINER_PRELOAD_LUSTRE is on (`enroot import --output` into a
    fixed cluster path): the folder, or None when the script has no such step."""
    for line in _read(code, script):
        match = re.search(r'CONT_FILE="(/[^"$]+)/\$\{SLURM_JOBID\}', line)
        if match and "enroot" not in line:
            return match.group(1)
    return None


def trial_log_glob(datestamp: str, index: int) -> str:
    """run.sub names experiment <index>'s log <LOGDIR>/<LOG_BASE>_<index>.log, where LOG_BASE is the DATESTAMP or,
    with TIME_TAGS/NVTX_FLAG/SYNTH_DATA/EPOCH_PROF/DISABLE_CG, a longer name holding it; a30.sub uses the
    DATESTAMP. (`seq -w 1 NEXP` pads the index to NEXP's width.)"""
    return f"*{datestamp}*_{index}.log"
