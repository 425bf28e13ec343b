"""The package as users install it: the wheel built from this checkout carries the suites, the license and complete
metadata, and from an empty folder, with only the wheel's package on the path, the documented commands run them.

The wheel and the sdist are real: this checkout's files copied to a temporary folder (nothing is built inside the
checkout) and built by pip and setuptools without build isolation (this environment's setuptools, offline). The
wheel is installed with `pip install --no-deps --target` into a folder put first on PYTHONPATH, so its
pytest_mlperf, suites included, shadows the checkout's editable install while the dependencies come from this
environment; every run below checks that the wheel's copy was the one imported. `.ci/wheel` does the rest of
what a user does: a fresh virtual environment with the wheel and its dependencies from the index."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT
from pytest_mlperf import installed as installed_mod

tomllib = pytest.importorskip("tomllib")

IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and the sdist of this checkout, built from a copy of it."""
    top = tmp_path_factory.mktemp("build")
    source, dist = top / "source", top / "dist"
    shutil.copytree(ROOT, source, ignore=IGNORED, symlinks=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."]
    subprocess.run(pip, cwd=source, check=True, capture_output=True, timeout=300)
    sdist = "from setuptools import build_meta as b; import sys; print(b.build_sdist(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", sdist, str(dist)], cwd=source, check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("pytest_mlperf-*.whl")
    (sdist_file,) = dist.glob("pytest_mlperf-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist_file}


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """The wheel installed alone (no dependencies) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target)]
    subprocess.run([*pip, str(built["wheel"])], check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture
def empty(tmp_path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def _run(installed: Path, cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """python ARGS in cwd with the installed wheel first on the path (and nothing of the checkout's folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _wheel_metadata(wheel: Path) -> tuple[list[str], email.message.Message, str]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(info))
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    return names, meta, entry_points


def test_pyproject_lists_every_package_and_maps_the_suites():
    """The explicit package list names every package folder of pytest_mlperf/ (a new one would otherwise be left
    out of the wheel), and the suites package is the repository's top-level suites/ folder."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    on_disk = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "pytest_mlperf").rglob("__init__.py")}
    assert set(tool["packages"]) == on_disk | {"pytest_mlperf.suites"}
    assert tool["package-dir"] == {"pytest_mlperf.suites": "suites"}
    assert (ROOT / "suites" / "__init__.py").is_file()
    assert not (ROOT / "pytest_mlperf" / "suites").exists()  # one copy of the suites, not two


def test_wheel_carries_the_suites_license_and_complete_metadata(built):
    names, meta, entry_points = _wheel_metadata(built["wheel"])
    with zipfile.ZipFile(built["wheel"]) as zf:
        for name in ("__init__.py", "test_inference.py", "test_training.py"):
            assert zf.read(f"pytest_mlperf/suites/{name}") == (ROOT / "suites" / name).read_bytes()
        for path in (ROOT / "pytest_mlperf").rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                name = path.relative_to(ROOT).as_posix()
                assert name in names, f"{name} is not in the wheel"
                assert zf.read(name) == path.read_bytes()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert zf.read(license_name) == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in (ROOT / "LICENSE").read_bytes()
    assert "pytest_mlperf/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "suites/", "benchmarks/", "conftest"))]

    assert meta["Name"] == "pytest-mlperf" and meta["Version"] == version("pytest-mlperf")
    assert meta["Summary"] and meta["Requires-Python"] == ">=3.10"
    assert meta["License-Expression"] == "Apache-2.0"
    classifiers = meta.get_all("Classifier")
    assert {"Framework :: Pytest", "Typing :: Typed", "Operating System :: POSIX :: Linux"} <= set(classifiers)
    urls = meta.get_all("Project-URL")
    assert urls and all(re.match(r"[^,]+, https://", u) for u in urls), urls
    assert meta.get_content_type() == "text/plain" and "pytest suites -m inference" in meta.get_payload()
    assert meta["Description-Content-Type"] == "text/markdown"
    assert re.search(r"^\[pytest11\]\nmlperf = pytest_mlperf\.plugin$", entry_points, re.M)
    assert re.search(r"^pytest-mlperf = pytest_mlperf\.cli:main$", entry_points, re.M)


def test_sdist_carries_the_suites_folder_and_the_license(built):
    with tarfile.open(built["sdist"]) as tf:
        names = {name.split("/", 1)[1] for name in tf.getnames() if "/" in name}
        top = tf.getnames()[0].split("/")[0]
        assert (
            tf.extractfile(f"{top}/suites/test_inference.py").read()
            == (ROOT / "suites" / "test_inference.py").read_bytes()
        )
    assert {"LICENSE", "README.md", "pyproject.toml", "suites/__init__.py", "suites/test_training.py"} <= names
    assert "pytest_mlperf/catalog/inference_v2_0.json" in names
    # the whole project, so `pytest tests` runs from an unpacked sdist
    wanted = {"conftest.py", "pytest.ini", "tox.ini", ".ci/run", ".ci/wheel"}
    for folder in ("tests", "benchmarks", "tools"):
        for path in (ROOT / folder).rglob("*"):
            parts = path.relative_to(ROOT).parts
            if path.is_file() and not [part for part in parts if part.startswith(".") or part == "__pycache__"]:
                wanted.add("/".join(parts))
    assert len(wanted) > 40
    assert not wanted - names, sorted(wanted - names)[:10]
    with tarfile.open(built["sdist"]) as tf:
        assert tf.getmember(f"{top}/tests/standin_image/python3").mode & 0o111  # still executable


def test_version_of_the_command_and_the_header_is_the_package_metadata(installed, empty):
    meta = email.message_from_bytes(next(installed.glob("pytest_mlperf-*.dist-info/METADATA")).read_bytes())
    wheel_version = meta["Version"]
    shown = _run(installed, empty, "-m", "pytest_mlperf", "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"pytest-mlperf {wheel_version}", shown
    where = _run(
        installed, empty, "-c", "import pytest_mlperf.suites as s, pytest_mlperf as p; print(s.__file__, p.__version__)"
    )
    suites_file, imported_version = where.stdout.split()
    assert Path(suites_file).is_relative_to(installed) and imported_version == wheel_version, where
    header = _run(
        installed, empty, "-m", "pytest", "--pyargs", "pytest_mlperf.suites", "--collect-only", "-p", "no:cacheprovider"
    )
    assert f"mlperf: pytest-mlperf {wheel_version}" in header.stdout, header.stdout[-2000:]


def test_no_tests_in_an_empty_folder_says_what_to_type(installed, empty):
    """The issue's first attempt: pytest -m inference in an empty folder. Nothing to collect (exit 5, as pytest
    says), and the plugin names the two commands that run the installed suites."""
    result = _run(installed, empty, "-m", "pytest", "-m", "inference", "--sku", "A100-SXM-80GBx8")
    assert result.returncode == 5, result.stdout[-2000:]
    assert (
        f"no test ran from the current folder ({empty}). The MLPerf suites are installed with the plugin"
        in result.stdout
    )
    assert "'pytest --pyargs pytest_mlperf.suites -m inference --sku SKU ...'" in result.stdout
    assert "'pytest-mlperf run -m inference --sku SKU ...'" in result.stdout


def test_installed_wheel_replays_the_published_results_from_an_empty_folder(installed, empty, inference_fixtures):
    """The documented command, from an empty folder: NVIDIA's published v2.0 results of the DGX A100 (8 GPUs)
    replayed through the installed suites, 28 cases judged and passed, the JSON written where the user asked."""
    result = _run(
        installed,
        empty,
        *"-m pytest --pyargs pytest_mlperf.suites -m inference --sku A100-SXM-80GBx8".split(),
        f"--mlperf-results={inference_fixtures}",
        *"--mlperf-json=replay.json --junitxml=replay.xml -p no:cacheprovider".split(),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b28 passed\b", result.stdout), result.stdout[-2000:]
    assert f"rootdir: {empty}" in result.stdout
    records = json.loads((empty / "replay.json").read_text())["results"]
    passed = [r for r in records if r["outcome"] == "passed"]
    assert len(passed) == 28 and all(r["verdict"] in ("PASS", "VALID") for r in passed)
    skipped = [r for r in records if r["outcome"] != "passed"]  # ssd-mobilenet Offline: not in the fixtures
    assert len(skipped) == 4 and all(r["outcome"] == "skipped" and "no " in r["reason"] for r in skipped)
    assert sorted(p.name for p in empty.iterdir()) == ["replay.json", "replay.xml"]  # nothing else written here


def test_users_repository_runs_its_own_tests_beside_the_suites(installed, empty, inference_fixtures):
    """The README's example of a site's repository (its conftest's hook drops the Triton harness; its own test
    uses the plugin's session fixture), run with `pytest-mlperf run` from that repository's folder."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- own-repo-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its example of a user's own repository"
    conftest, test_site = match.group(1).split("# test_site.py\n")
    (empty / "conftest.py").write_text(conftest.replace("# conftest.py\n", ""))
    (empty / "test_site.py").write_text(test_site)
    common = [
        "-m",
        "inference",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
        "-p",
        "no:cacheprovider",
    ]
    result = _run(
        installed, empty, "-m", "pytest_mlperf", "run", "test_site.py", *common, "--mlperf-json=site.json", "-rA"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "PASSED test_site.py::test_node_is_a_system_we_accept" in result.stdout
    records = json.loads((empty / "site.json").read_text())["results"]
    passed = [r["id"] for r in records if r["outcome"] == "passed"]
    assert passed and not [r for r in records if r["id"].endswith("-triton")]  # the site's hook, on our suites
    triton = _replayed_triton(installed, empty, common)
    # 14 Triton tests without the hook; all but ssd-mobilenet Offline's two find published results and pass
    assert len(triton) == 14 and len(passed) == 28 - (14 - 2)
    assert f"{len(passed) + 1} passed" in result.stdout

    other = _run(
        installed, empty, "-m", "pytest_mlperf", "run", "test_site.py", *common[:2], "--sku", "A2x2", *common[4:]
    )
    assert other.returncode == 1 and "FAILED test_site.py::test_node_is_a_system_we_accept" in other.stdout, (
        other.stdout[-2000:]
    )


def _replayed_triton(installed: Path, cwd: Path, common: list[str]) -> list[str]:
    """The Triton cases the same replay has without the site's conftest (collected in a folder of its own)."""
    folder = cwd.parent / "plain"
    folder.mkdir(exist_ok=True)
    listed = _run(
        installed, folder, "-m", "pytest", "--pyargs", "pytest_mlperf.suites", *common, "--collect-only", "-q"
    )
    return [line for line in listed.stdout.splitlines() if line.endswith("-triton]")]


def test_installed_wheel_runs_a_local_case(installed, empty):
    """One short case on the embedded default (the real LoadGen over a stand-in model), from the wheel alone."""
    result = _run(
        installed,
        empty,
        *"-m pytest_mlperf run -m inference -k ssd-mobilenet-Offline-AccuracyOnly --mlperf-json=local.json".split(),
        *"-p no:cacheprovider".split(),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b1 passed\b", result.stdout), result.stdout[-2000:]
    (record,) = json.loads((empty / "local.json").read_text())["results"]
    assert record["id"] == "ssd-mobilenet-Offline-AccuracyOnly-local" and record["verdict"] == "PASS"


@pytest.mark.parametrize("named", [["--pyargs", "pytest_mlperf.suites"], []], ids=["pyargs", "nothing-named"])
def test_two_word_results_option_is_refused_by_plain_pytest_and_joined_by_run(
    installed, empty, inference_fixtures, named
):
    """`--mlperf-results DIR` as two words: pytest takes DIR for a test path while it chooses its rootdir, so plain
    pytest refuses it (whatever else is named); `pytest-mlperf run`, our own command line, joins the two words
    before pytest sees them and replays the tree from the folder it was started in."""
    args = ["--sku", "A100-SXM-80GBx8", "--mlperf-results", str(inference_fixtures)]
    result = _run(installed, empty, "-m", "pytest", *named, *args)
    assert result.returncode == 4, result.stdout[-2000:]  # pytest.ExitCode.USAGE_ERROR
    assert f"write --mlperf-results={inference_fixtures} (one word)" in result.stderr, result.stderr[-2000:]
    if named:
        joined = _run(
            installed, empty, "-m", "pytest_mlperf", "run", "-m", "inference", *args, "-p", "no:cacheprovider"
        )
        assert joined.returncode == 0, joined.stdout[-3000:]
        assert re.search(r"\b28 passed\b", joined.stdout) and f"rootdir: {empty}" in joined.stdout, joined.stdout[
            -2000:
        ]


def test_the_suites_run_whatever_the_users_python_files_says(installed, empty, inference_fixtures):
    """A site's pytest.ini collects check_*.py: pointed at the suites, pytest still runs them (and the site's own
    check_*.py files), where it used to collect nothing and say nothing."""
    (empty / "pytest.ini").write_text("[pytest]\npython_files = check_*.py\naddopts = --strict-markers\n")
    (empty / "check_site.py").write_text("def test_site_check(mlperf_session):\n    assert mlperf_session.system\n")
    args = [
        "-m",
        "pytest_mlperf",
        "run",
        "check_site.py",
        "--sku",
        "A100-SXM-80GBx8",
        f"--mlperf-results={inference_fixtures}",
    ]
    result = _run(installed, empty, *args, "-m", "inference or not inference", "-p", "no:cacheprovider", "-rA")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "PASSED check_site.py::test_site_check" in result.stdout
    assert re.search(r"\b29 passed\b", result.stdout), result.stdout[-2000:]  # 28 replayed cases and the check


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_users_file_with_a_suites_name_is_refused_before_collection(installed, empty, inference_fixtures, workers):
    """pytest names tests below the folder it was pointed at: a user's own top-level test_inference.py and the
    installed suite's would share ids (reports, --deselect and --lf could not tell them apart). Refused at the
    start, before xdist's workers collect (an error there would crash them)."""
    (empty / "test_inference.py").write_text(
        "import pytest\n\n@pytest.mark.inference\ndef test_inference(mlperf_case):\n    assert mlperf_case\n"
    )
    args = ["--sku", "A100-SXM-80GBx8", f"--mlperf-results={inference_fixtures}", "-m", "inference and rnnt"]
    result = _run(
        installed, empty, "-m", "pytest_mlperf", "run", "test_inference.py", *args, *workers, "-p", "no:cacheprovider"
    )
    assert result.returncode == 4, result.stdout[-2000:]
    assert f"ERROR: {empty / 'test_inference.py'}: named like the installed suites' files" in result.stderr, (
        result.stderr
    )
    assert "INTERNALERROR" not in result.stdout + result.stderr

    (empty / "test_inference.py").rename(empty / "test_site_inference.py")  # renamed, both run
    renamed = _run(
        installed,
        empty,
        "-m",
        "pytest_mlperf",
        "run",
        "test_site_inference.py",
        *args,
        *workers,
        "-p",
        "no:cacheprovider",
    )
    # rnnt: the suite's 4 cases (Offline, Server; two modes; custom), and the user's test over the same 4
    assert renamed.returncode == 0 and re.search(r"\b8 passed\b", renamed.stdout), renamed.stdout[-2000:]


def test_ids_shared_with_a_suite_file_are_found_among_collected_items():
    """The check after collection, for layouts the one before it cannot foresee: only ids a suite's file shares."""
    suite = str(installed_mod.suites_dir() / "test_inference.py")
    items = [
        SimpleNamespace(nodeid="test_inference.py::test_inference[a]", path=suite),
        SimpleNamespace(nodeid="test_inference.py::test_inference[a]", path="/elsewhere/test_inference.py"),
        SimpleNamespace(nodeid="x.py::t", path="/one/x.py"),
        SimpleNamespace(nodeid="x.py::t", path="/two/x.py"),  # two files of the user's: not the plugin's business
    ]
    assert installed_mod.shared_ids(items) == [
        ("test_inference.py::test_inference[a]", sorted(["/elsewhere/test_inference.py", suite]))
    ]


@pytest.mark.parametrize(
    "args, hint",
    [
        ([".", "-m", "inference"], "no test ran from the current folder"),
        (["--pyargs", "pytest_mlperf.suites.test_training", "-m", "inference"], None),  # named, all deselected
        (["--pyargs", "pytest_mlperf.suites", "-m", "no_such_marker"], None),
        (["sub", "-m", "inference"], "no test ran from sub."),
    ],
)
def test_the_hint_only_when_the_suites_were_not_named(installed, empty, args, hint):
    (empty / "sub").mkdir()
    (empty / "sub" / "test_mine.py").write_text("def test_mine():\n    pass\n")
    result = _run(installed, empty, "-m", "pytest", *args, "-p", "no:cacheprovider")
    assert result.returncode == 5, result.stdout[-2000:]
    assert (hint in result.stdout) if hint else ("pytest-mlperf: no test ran" not in result.stdout), result.stdout


def test_the_readme_and_ci_run_the_same_test_command():
    """The README's second command is the one .ci/run ends with, word for word (workers and distribution
    included): the time the README states is the time CI takes."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("2. Run the project's own tests") :]
    readme_command = re.search(r"```\n\s*(\S.*?)\n\s*```", block).group(1).strip()
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith(".venv/bin/pytest tests")]
    assert ci == [readme_command], (ci, readme_command)
