"""What commit a checkout of NVIDIA's code is at, for the fingerprint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def code_commit(path: Path | None) -> str | None:
    if path is None or shutil.which("git") is None:
        return None
    proc = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.stdout.strip() or None if proc.returncode == 0 else None
