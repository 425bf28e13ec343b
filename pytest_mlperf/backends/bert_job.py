"""What a run of NVIDIA's BERT needs from the machine and the cluster, checked before anything is started: the image
reference a job script can use, the walltime a config file sets, the variables a job script reads, and the host's
page cache dropped the way NVIDIA's scripts drop it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# NVIDIA's README tags the image it builds from the implementation's Dockerfile this way.
DEFAULT_IMAGE = "mlperf-nvidia:language_model"
# What run_with_docker.sh runs in the container after dropping the host's caches; its MLLOG line goes into the
# trial's log, where MLPerf Training's compliance rules want a cache_clear event before the run starts.
CACHE_CLEAR_CODE = (  # byte for byte the script's `python -c "..."` argument
    "\nfrom mlperf_logging.mllog import constants \n"
    "from mlperf_logger import mllogger\n"
    "mllogger.event(key=mllogger.constants.CACHE_CLEAR, value=True)"
)
_REGISTRY_HOST = re.compile(r"^(localhost|[\w-]+(\.[\w-]+)+|[\w.-]+:\d+)$")


def image_problem(image: str, script: str) -> str | None:
    """Why a job script cannot start `image` on the nodes, or None. run.sub hands it to pyxis
    (`srun --container-image`) and, with CONTAINER_PRELOAD_LUSTRE, to `enroot import docker://`; both read an enroot
    URI (`[USER@][REGISTRY#]IMAGE[:TAG]`, a bare path being a Docker Hub repository) or a squashfs file. a30.sub runs
    `docker run --pull=always` on the node, which pulls a Docker reference. Neither sees the submit host's Docker
    engine, so a bare local tag (mlperf-nvidia:language_model) would be looked for on Docker Hub."""
    if image != image.strip() or not image or any(c.isspace() for c in image):
        return f"{image!r}: an image reference holds no spaces"
    if image.startswith("/"):
        if script != "run.sub":
            return f"{script} runs `docker run --pull=always` on the node: it needs a registry reference, not {image}"
        if not image.endswith((".sqsh", ".squashfs")):
            return f"{image}: pyxis takes a squashfs file (.sqsh or .squashfs) or a registry reference"
        return None if Path(image).is_file() else f"{image}: no such squashfs file here"
    if "#" in image:
        if script != "run.sub":
            return f"{image} is enroot's form; {script} runs `docker run`: name it registry/repository:tag"
        registry, _, rest = image.rpartition("@")[2].partition("#")
        if not _REGISTRY_HOST.match(registry):
            return f"{image}: before '#' enroot wants a registry host (nvcr.io#nvidia/pytorch:22.09-py3)"
        return _name_problem(image, rest)
    first, slash, rest = image.partition("/")
    if slash and _REGISTRY_HOST.match(first):
        return _name_problem(image, rest)
    how = "pyxis (srun --container-image)" if script == "run.sub" else "docker run --pull=always on the node"
    squash = (
        " or a squashfs file every node can read (enroot import -o /shared/bert.sqsh dockerd://" + image + ")"
        if script == "run.sub"
        else ""
    )
    return (
        f"{how} would pull {image!r} from Docker Hub, not from this machine's Docker engine: push the image built "
        f"from NVIDIA's Dockerfile to your registry and name it with its registry (<registry>/mlperf-nvidia:"
        f"language_model, docker.io/<user>/... for Docker Hub){squash}"
    )


# Docker's reference grammar, which enroot's URI narrows the same way: lower-case path components joined by
# '/', an optional tag of up to 128 characters, an optional digest.
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+:[0-9a-fA-F]{32,}$")


def _name_problem(image: str, rest: str) -> str | None:
    """What is wrong with the repository[:tag][@digest] after the registry, or None."""
    rest, at, digest = rest.partition("@")
    path, colon, tag = rest.partition(":")
    if not _PATH.match(path):
        return f"{image}: the repository {path!r} is not lower-case name components joined by '/'"
    if colon and not _TAG.match(tag):
        return f"{image}: the tag {tag!r} is not a Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]*)"
    if at and not _DIGEST.match(digest):
        return f"{image}: the digest {digest!r} is not algorithm:hex"
    return None


def job_image(image: str, script: str) -> str:
    """CONT as the job script needs it: for run.sub an enroot URI, where the registry is set off by '#'
    (registry.example.com/mlperf-nvidia:language_model -> registry.example.com#mlperf-nvidia:language_model; enroot
    would read the first form as a Docker Hub repository; docker.io/<user>/<repo> -> <user>/<repo>); for a30.sub the
    Docker reference as given. Call after image_problem() found nothing."""
    if script != "run.sub" or image.startswith("/") or "#" in image:
        return image
    registry, _, rest = image.partition("/")
    return rest if registry in ("docker.io", "index.docker.io", "registry-1.docker.io") else f"{registry}#{rest}"


MAX_MINUTES = 2**32 - 2  # Slurm keeps a time limit in 32 bits of minutes (all ones is INFINITE)
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def walltime_minutes(text: str | None) -> int | None:
    """A config file's WALLTIME in minutes, read as `sbatch --time` reads it: minutes, minutes:seconds,
    hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds; seconds round up to the next
    minute. None when unset. An unlimited time (-1, INFINITE, UNLIMITED) and one no Slurm can hold are refused: a
    trial needs a limit."""
    if not text or not text.strip():
        return None
    value = text.strip()
    if value.upper() in ("-1", "INFINITE", "UNLIMITED"):
        raise ValueError(f"WALLTIME {text!r} is unlimited: a trial needs a time limit (give --mlperf-step-timeout)")
    match = _TIME.match(value)
    if not match:
        raise ValueError(f"WALLTIME {text!r} is not a Slurm time (minutes, HH:MM:SS, D-HH[:MM[:SS]])")
    days, first, second, third = match.groups()
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        total = int(days) * 1440 + hours * 60 + minutes
    elif third is not None:  # hours:minutes:seconds
        total, seconds = int(first) * 60 + int(second), int(third)
    else:  # minutes[:seconds]
        total, seconds = int(first), int(second or 0)
    total += 1 if seconds else 0
    if total > MAX_MINUTES:
        raise ValueError(f"WALLTIME {text!r} is more than a Slurm time limit can hold ({MAX_MINUTES} minutes)")
    return total


def missing_variables(required: dict[str, str], env: dict[str, str]) -> list[str]:
    """Each variable a job script reads without a default that is unset or empty, with where it is read."""
    return [f"{name} (read at {where})" for name, where in required.items() if not env.get(name)]


def drop_host_caches() -> str | None:
    """`sync && sudo /sbin/sysctl vm.drop_caches=3`, as NVIDIA's scripts do before each trial: written directly as
    root, else through sudo without a password prompt. Returns why it could not be done, or None."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return None
    except OSError as exc:
        direct = exc.strerror or str(exc)
    try:
        proc = subprocess.run(
            ["sudo", "-n", "/sbin/sysctl", "vm.drop_caches=3"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"writing /proc/sys/vm/drop_caches: {direct}; sudo: {exc}"
    if proc.returncode == 0:
        return None
    return f"writing /proc/sys/vm/drop_caches: {direct}; sudo -n /sbin/sysctl: {proc.stderr.strip() or proc.returncode}"
