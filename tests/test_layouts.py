"""The same command gives the same answer in every folder layout.

pytest chooses its rootdir and ini file before plugins are loaded, so a plugin option's value written as a separate
word (`--mlperf-results DIR`) is a test path to it at that moment, and where DIR sits decides which rootdir and ini
file the run gets. A user's working folder and the results tree are laid out here three ways: side by side under
one folder (a clone and its shared folder under /tmp), the working folder deep below the tree's parent, and the two
on different branches of the file system (/tmp and /var/tmp, whose common ancestor is /). In each, plain pytest
refuses the two words with the same message; `pytest-mlperf run` joins them and replays the tree with the working
folder as rootdir and its own pytest.ini read; the one-word spelling replays the same way with plain pytest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT
from pytest_mlperf.options import join_values, two_word_values

SKU = ["--sku", "A100-SXM-80GBx8", "-m", "inference and rnnt"]  # 4 cases of the DGX A100 x8, all in the fixtures
LAYOUTS = ("side-by-side", "deep", "apart")


@pytest.fixture(params=LAYOUTS)
def layout(request, tmp_path, inference_fixtures):
    """(working folder, results tree) as the layout places them: the tree is a symbolic link to the published
    fixtures (pytest takes paths as given, without resolving links, so the link's place is the layout)."""
    spare = None
    if request.param == "side-by-side":
        work, tree = tmp_path / "x" / "main", tmp_path / "x" / "shared" / "fixtures" / "inference"
    elif request.param == "deep":
        work, tree = tmp_path.joinpath(*"abcdefghij") / "main", tmp_path / "shared" / "inference"
    else:
        spare = Path(tempfile.mkdtemp(prefix="pytest-mlperf-layout-", dir="/var/tmp"))
        work, tree = tmp_path / "main", spare / "shared" / "inference"
    work.mkdir(parents=True)
    (work / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\n")
    tree.parent.mkdir(parents=True)
    tree.symlink_to(inference_fixtures)
    yield work, tree
    if spare is not None:
        shutil.rmtree(spare)


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _replayed(result: subprocess.CompletedProcess, work: Path) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout[-2000:]
    assert f"rootdir: {work}" in result.stdout and "configfile: pytest.ini" in result.stdout, result.stdout[:1500]


def test_run_joins_two_words_and_plain_pytest_refuses_them_in_every_layout(layout):
    work, tree = layout
    joined = _python(work, "-m", "pytest_mlperf", "run", *SKU, "--mlperf-results", str(tree))
    _replayed(joined, work)
    _replayed(_python(work, "-m", "pytest", "--pyargs", "pytest_mlperf.suites", *SKU, f"--mlperf-results={tree}"), work)
    for named in (["--pyargs", "pytest_mlperf.suites"], [str(ROOT / "suites")], []):
        refused = _python(work, "-m", "pytest", *named, *SKU, "--mlperf-results", str(tree))
        assert refused.returncode == 4, (named, refused.stdout[-2000:])  # pytest.ExitCode.USAGE_ERROR
        assert f"--mlperf-results {tree}: pytest reads a plugin option's value written as a separate word" in (
            refused.stderr
        ), refused.stderr[-2000:]
        assert f"write --mlperf-results={tree} (one word)" in refused.stderr


def test_a_run_started_inside_the_tree_is_refused(inference_fixtures, tmp_path):
    """Started from inside the results tree, pytest's rootdir is the tree: its cache would be written there."""
    tree = tmp_path / "inference"
    tree.symlink_to(inference_fixtures)
    result = _python(tree, "-m", "pytest", "--pyargs", "pytest_mlperf.suites", *SKU, "--mlperf-results=.")
    assert result.returncode == 4, result.stdout[-2000:]
    assert "pytest took the results tree . as its rootdir and would write its cache into it" in result.stderr


@pytest.mark.parametrize(
    "words, joined",
    [
        (["--mlperf-results", "DIR", "-k", "x"], ["--mlperf-results=DIR", "-k", "x"]),
        (["--sku", "A30x8", "--mlperf-json", "r.json"], ["--sku=A30x8", "--mlperf-json=r.json"]),
        (
            ["--mlperf-results=DIR", "--mlperf-each-gpu", "tests"],
            ["--mlperf-results=DIR", "--mlperf-each-gpu", "tests"],
        ),
        (["--mlperf-each-gpu", "tests"], ["--mlperf-each-gpu", "tests"]),  # a switch takes no value
        (["--mlperf-json", "--sku", "A2x2"], ["--mlperf-json", "--sku=A2x2"]),  # argparse refuses the first itself
        (["--", "--mlperf-results", "DIR"], ["--", "--mlperf-results", "DIR"]),  # after --, only arguments
        (["--mlperf-results"], ["--mlperf-results"]),
    ],
)
def test_join_values(words, joined):
    assert join_values(words) == joined
    assert join_values(joined) == joined  # joining twice changes nothing
    assert len(two_word_values(words)) == len(words) - len(joined)  # one word fewer for each pair joined
