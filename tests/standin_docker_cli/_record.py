"""Shared body of the recording stand-ins in this folder (docker, nvidia-docker, sudo, sleep, nvidia-smi), for tests
only: NVIDIA's launch scripts run with this folder first on PATH, so what they would start is written down instead
of run. Each call appends one JSON line to the file named by $RECORD:

    {"prog": "docker", "argv": [...], "env": {NAME: value}, "unset": [NAME], "env_files": {FILE: [lines]}}

env is what the docker CLI would put into the container from its -e/--env and --env-file options: NAME=VALUE as
given, a bare NAME with this process's value (the CLI's own rule), and a bare NAME that is not set listed under
unset (the CLI drops it). Every stand-in exits 0; `docker run --detach` prints a container id, and
`docker exec NAME bash -c "compgen -e"` (a30.sub asks the container which variables it has) prints the names
IMAGE_ENV lists."""

from __future__ import annotations

import json
import os
import sys

# What `compgen -e` prints in NVIDIA's image (nvcr.io/nvidia/pytorch:22.09-py3 plus the implementation's
# Dockerfile): bash's own, the image's ENV lines; a representative subset, enough for a30.sub's subtraction.
IMAGE_ENV = [
    "BERT_PREP_WORKING_DIR",
    "CUDA_VERSION",
    "HOME",
    "HOSTNAME",
    "LD_LIBRARY_PATH",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NVIDIA_VISIBLE_DEVICES",
    "PATH",
    "PWD",
    "PYTHONPATH",
    "PYTORCH_VERSION",
    "SHLVL",
]

# docker run/create/exec options that take a value (as a separate argument unless written --opt=value).
VALUE_OPTIONS = {
    "-e", "--env", "--env-file", "--name", "-v", "--volume", "--gpus", "--ulimit", "--pull", "--net", "--network",
    "-u", "--user", "-w", "--workdir", "--uts", "--ipc", "--pid", "--security-opt", "--mount", "-l", "--label",
    "--runtime", "--shm-size", "--entrypoint", "--cap-add", "--cap-drop", "--device", "--detach-keys",
    "--platform", "-p", "--publish", "-h", "--hostname", "-m", "--memory", "--cpus", "--cpuset-cpus",
}  # fmt: skip
SHORT_VALUE = {"e", "v", "u", "w", "l", "p", "h", "m"}


def split_options(args: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """A docker subcommand's options (name, value) up to its first operand, and the operands."""
    options, i = [], 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq and name in VALUE_OPTIONS:
                i += 1
                value = args[i]
            options.append((name, value if (eq or name in VALUE_OPTIONS) else None))
        else:  # -it, -e NAME, -eNAME
            letters = arg[1:]
            for j, letter in enumerate(letters):
                if letter in SHORT_VALUE:
                    rest = letters[j + 1 :]
                    if not rest:
                        i += 1
                        rest = args[i]
                    options.append((f"-{letter}", rest))
                    break
                options.append((f"-{letter}", None))
        i += 1
    return options, args[i:]


def environment(options: list[tuple[str, str | None]]) -> tuple[dict, list, dict]:
    env, unset, files = {}, [], {}

    def add(item: str) -> None:
        name, eq, value = item.partition("=")
        if eq:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
        else:
            unset.append(name)

    for name, value in options:
        if name in ("-e", "--env"):
            add(value)
        elif name == "--env-file":
            with open(value) as fh:  # a30.sub passes <(...): a pipe, readable once
                lines = fh.read().splitlines()
            files[value] = lines
            for line in lines:
                line = line.lstrip()
                if line and not line.startswith("#"):
                    add(line)
    return env, unset, files


def main(prog: str) -> None:
    args = sys.argv[1:]
    entry: dict = {"prog": prog, "argv": args, "env": {}, "unset": [], "env_files": {}}
    operands: list[str] = []
    if prog in ("docker", "nvidia-docker"):
        sub = args[1:] if args[:1] == ["container"] else args  # docker container run == docker run
        if sub[:1] in (["run"], ["create"], ["exec"]):
            options, operands = split_options(sub[1:])
            entry["env"], entry["unset"], entry["env_files"] = environment(options)
            if sub[0] == "run" and any(name in ("-d", "--detach") for name, _ in options):
                print("0" * 64)
            if sub[0] == "exec" and operands[1:] == ["bash", "-c", "compgen -e"]:
                print("\n".join(IMAGE_ENV))
    with open(os.environ["RECORD"], "a") as fh:  # one write per call: appends of concurrent stand-ins stay whole
        fh.write(json.dumps(entry) + "\n")
    sys.exit(0)
