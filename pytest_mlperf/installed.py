"""The suites as installed (the package pytest_mlperf.suites, which a checkout maps to its suites/ folder): where
they are, whether a command line names them, collecting them whatever a user's python_files says, and test ids
that two files share."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import pytest
from _pytest.pathlib import fnmatch_ex

from . import SUITES


@cache
def suites_dir() -> Path | None:
    """The folder of the suites' files, or None where the package cannot be found (a source tree not installed)."""
    try:
        spec = importlib.util.find_spec(SUITES)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve().parent if spec is not None and spec.origin else None


def is_suite_file(path: Path | str) -> bool:
    """One of the suites' test files (asked of every file pytest collects: the name first, the folder after)."""
    path = Path(path)
    if path.suffix != ".py" or not path.name.startswith("test_"):
        return False
    found = suites_dir()
    return found is not None and path.resolve().parent == found


def names_suites(args: list[str], here: Path) -> bool:
    """Whether pytest was pointed at the suites or inside them: the package or a module of it, pytest_mlperf
    itself, or a path into the suites' folder (a checkout's suites/, or a node id in it)."""
    found = suites_dir()
    for arg in args:
        if arg in (SUITES, "pytest_mlperf") or arg.startswith(SUITES + "."):
            return True
        path = (here / arg.split("::", 1)[0]).resolve()
        if found is not None and (path == found or path.is_relative_to(found)):
            return True
    return False


def clashing_files(args: list[str], here: Path, rootdir: Path) -> list[Path]:
    """A user's files that would share the installed suites' test ids, found before collection (under xdist the
    workers collect, where an error would crash them): pytest names the installed suites' tests below their own
    folder (test_inference.py::...), and a file of the same name at the top of the user's rootdir, which the
    command line reaches (the rootdir itself, or the file), gets the same ids. Not in a checkout, whose suites sit
    under the rootdir (suites/test_inference.py::...)."""
    found, root = suites_dir(), rootdir.resolve()
    if found is None or found.is_relative_to(root) or not names_suites(args, here):
        return []
    reached = {(here / arg.split("::", 1)[0]).resolve() for arg in args}
    names = sorted(path.name for path in found.glob("test_*.py"))
    return [root / name for name in names if (root / name).is_file() and reached & {root, root / name}]


def suite_module(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """A suite file that the user's python_files (their pytest.ini's, e.g. check_*.py) would leave out: the
    suites run whenever pytest is pointed at them, and pytest's own collector takes those that match."""
    if not is_suite_file(file_path):
        return None
    patterns = parent.config.getini("python_files")
    if any(fnmatch_ex(pattern, file_path) for pattern in patterns):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def shared_ids(items: list[pytest.Item]) -> list[tuple[str, list[str]]]:
    """Test ids that a suite's file and another file both give: a user's own test_inference.py and the installed
    suite's are both `test_inference.py::...` to pytest (node ids start below the folder pytest was pointed at),
    and reports, --deselect and --lf could not tell them apart."""
    paths: dict[str, set[str]] = {}
    for item in items:
        paths.setdefault(item.nodeid, set()).add(str(item.path))
    shared = [(nodeid, sorted(found)) for nodeid, found in paths.items() if len(found) > 1]
    return [(nodeid, found) for nodeid, found in shared if any(map(is_suite_file, found))]
