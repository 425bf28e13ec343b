"""A real Docker engine for the tests (Debian docker.io: dockerd with vfs storage, no bridge, no iptables), and
stand-in images built from a busybox-static rootfs with `docker import` (NVIDIA's images cannot exist here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_mlperf.machine.containers import LABEL_SESSION

APPLETS = (
    "sh sleep cat cp mkdir ln date awk sed tr echo printf rm env ls id mv true false test wc grep head tail tee whoami "
    "hostname cut dirname basename".split()
)


class Dockerd:
    def __init__(self, root: Path):
        self.root = root
        self.sock = root / "docker.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            "dockerd",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "dockerd.pid"),
            "-H",
            self.url,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
        ]
        self.proc = subprocess.Popen(cmd, stdout=(self.root / "dockerd.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {(self.root / 'dockerd.log').read_text()[-2000:]}")
            if self.ping():
                return
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer within 30 s")

    def ping(self) -> bool:
        import docker

        try:
            docker.DockerClient(base_url=self.url, timeout=5).ping()
            return True
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.url, timeout=60)

    def ours(self) -> list[str]:
        return [c.name for c in self.client().containers.list(all=True, filters={"label": LABEL_SESSION})]


def host_programs(*programs: str) -> dict[str, Path]:
    """This machine's own builds of programs a stand-in image runs (GNU make and bash, for NVIDIA's real
    Makefile), with the shared libraries ldd says they load, at the same paths inside the image."""
    files: dict[str, Path] = {}
    for program in programs:
        found = shutil.which(program)
        if found is None:
            pytest.skip(f"the stand-in image needs this machine's {program}")
        files[found] = Path(found).resolve()
        listing = subprocess.run(["ldd", found], capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            words = line.split()
            library = words[2] if "=>" in words and len(words) > 2 else words[0]
            if library.startswith("/"):
                files[library] = Path(library).resolve()
    return files


def busybox_image(
    dockerd: Dockerd,
    rootfs: Path,
    tag: str,
    files: dict[str, Path],
    trees: dict[str, Path],
    workdir: str | None = None,
) -> str:
    """Import an image whose rootfs is busybox plus files (mode 755) and folder trees at the given paths, with
    the given WORKDIR (as NVIDIA's training image has /workspace/bert)."""
    if not Path("/bin/busybox").exists():
        pytest.skip("the stand-in image is built from busybox-static (apt-get install busybox-static)")
    for folder in ("bin", "usr/bin", "tmp", "work", "etc"):
        (rootfs / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(Path("/bin/busybox"), rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    for inside, source in files.items():
        dest = rootfs / inside.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)
        dest.chmod(0o755)
    for inside, source in trees.items():
        shutil.copytree(source, rootfs / inside.lstrip("/"), ignore=shutil.ignore_patterns("*.md", "_other_submitters"))
    (rootfs / "tmp").chmod(0o1777)
    tar = rootfs.parent / f"{rootfs.name}.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(rootfs, arcname=".")
    repository, _, version = tag.partition(":")
    dockerd.client().api.import_image_from_file(
        str(tar),
        repository=repository,
        tag=version,
        changes=["ENV PATH=/usr/bin:/bin"] + ([f"WORKDIR {workdir}"] if workdir else []),
    )
    tar.unlink()
    return tag


def module_dockerd(name: str) -> Iterator[Dockerd]:
    """A module's engine: skipped without docker.io or root; fails the module if it left containers behind."""
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        pytest.skip("a Docker engine is needed: install Debian's docker.io and run as root (.ci/run does both)")
    daemon = Dockerd(Path(f"/tmp/mlperf-dockerd-{name}-{os.getpid()}"))
    daemon.start()
    yield daemon
    leftovers = daemon.ours()
    daemon.stop()
    shutil.rmtree(daemon.root, ignore_errors=True)
    assert leftovers == [], f"containers left behind by this module: {leftovers}"
