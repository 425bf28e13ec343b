"""Training trials' outcomes shared by every process of a run: one small JSON file a trial in a folder all of
them see (the xdist controller's basetemp), so a score never depends on which worker judged its trials."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from ..judge.verdict import TrialOutcome
from .records import write_json


class TrialStore:
    def __init__(self, folder: Path | Callable[[], Path]):
        self._folder = folder

    @property
    def folder(self) -> Path:
        if callable(self._folder):
            self._folder = Path(self._folder())
        return self._folder

    def _path(self, trial_id: str) -> Path:
        return self.folder / f"{hashlib.sha1(trial_id.encode()).hexdigest()[:20]}.json"

    def put(self, outcome: TrialOutcome) -> None:
        write_json(self._path(outcome.id), {**outcome.__dict__})

    def get(self, trial_id: str) -> TrialOutcome | None:
        path = self._path(trial_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            minutes = None if data["minutes"] is None else float(data["minutes"])
            reason, skipped = str(data.get("reason", "")), bool(data.get("skipped", False))
            identity = str(data.get("identity", ""))
            return TrialOutcome(str(data["id"]), bool(data["converged"]), minutes, reason, skipped, identity)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # written atomically: this is not ours
            return TrialOutcome(trial_id, False, None, f"its outcome file {path} is unreadable ({exc})")

    def wait(self, trial_id: str, timeout: float, poll: float = 0.5) -> TrialOutcome | None:
        """The trial's outcome once its test (on another worker) has written it; None after timeout seconds."""
        deadline = time.monotonic() + timeout
        while (found := self.get(trial_id)) is None and time.monotonic() < deadline:
            time.sleep(poll)
        return found
