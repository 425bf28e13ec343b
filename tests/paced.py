"""The pace of the tests' sleeping models (a user's model through pytest_mlperf_make_sut whose service time is a
sleep, so that its speed is what the test sets, not how busy the two cores here are). The models live in the
conftest.py of a project a test writes and runs in a child pytest; IMPORT, at the top of that conftest, makes this
module importable there.

A batch ends at a deadline on the model's own timeline. Within a LoadGen run (begin_run(), from the model's
load(), starts the timeline) a batch asked for up to CATCH_UP s after the last one's end starts at that end: an
Offline run queues all its work at once, so the model is never idle in it, and lateness (a wake-up late, a stall
of the process, LoadGen's and the backend's own work on a crowded machine) is made up instead of adding up.
Outside a run (the backend's probe of the model alone, whose calls have real gaps between them) a batch never
starts before it is asked for: made up there, the gaps would make the probe see the model faster than it is and
size an Offline run many times too long."""

from __future__ import annotations

import time
from pathlib import Path

IMPORT = f"import sys\nsys.path.append({str(Path(__file__).resolve().parent)!r})\nfrom paced import Timeline\n"
CATCH_UP = 2.0  # s: how late a batch may be asked for in a run and still start where the last one ended


class Timeline:
    def __init__(self) -> None:
        self.free: float | None = None  # when the model is next free (time.monotonic); None: nothing asked yet
        self.in_run = False

    def begin_run(self) -> None:
        self.free, self.in_run = None, True

    def book(self, seconds: float) -> None:
        """A batch of `seconds` of service: where it starts and so when it ends."""
        now = time.monotonic()
        if self.free is None or not self.in_run or now - self.free > CATCH_UP:
            start = max(now, self.free or now)
        else:
            start = self.free
        self.free = start + seconds

    def wait(self) -> None:
        """Sleep until the booked batch's end."""
        time.sleep(max(0.0, self.free - time.monotonic()))
