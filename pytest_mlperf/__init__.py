"""pytest-mlperf: MLPerf inference and training benchmarks as parametrized pytest tests."""

from importlib.metadata import PackageNotFoundError, version

SUITES = "pytest_mlperf.suites"  # the suites users run, installed with the plugin (the checkout's suites/ folder)

try:
    __version__ = version("pytest-mlperf")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+source"
