"""NVIDIA's end-of-run summaries: the blocks that run_harness prints, and the two JSON files behind them
(perf_harness_summary.json, accuracy_summary.json: {config name: {benchmark: message}}).

An AccuracyOnly run leaves no performance result: NVIDIA's harness (code/common/harness.py, run_harness) then
reports NO_PERFORMANCE where the perf message would be, and code/main.py writes that string into
perf_harness_summary.json like any other result; print_harness_result.py prints it under the perf banner.

Each entry is held to what its config name says (code/main.py: `<system name>-<workload>-<Scenario>`, the workload
`<harness>_<k_99|k_99_9>_<MaxP|MaxQ>`): the perf key is its scenario's, a benchmark named with an accuracy level
has the config's, and an accuracy message's verdict agrees with its own numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import ParseError, clean, finite, load_json, read_text
from .metadata import RESULT_KEYS

PERF_BANNER = "Perf harness results:"
ACC_BANNER = "Accuracy results:"

# A figure as Python prints one, nan and inf included, so that they are refused as numbers rather than as text.
_FIGURE = r"[-+]?(?:[0-9.eE+-]+|[Nn]a[Nn]|[Ii]nf(?:inity)?)"
_PERF_RE = re.compile(rf"^(?P<key>[A-Za-z0-9_.]+): (?P<value>{_FIGURE}), Result is (?P<validity>VALID|INVALID)$")
_ACC_RE = re.compile(
    rf"^Accuracy = (?P<value>{_FIGURE}), Threshold = (?P<threshold>{_FIGURE})\. "
    r"Accuracy test (?P<verdict>PASSED|FAILED)\.?$"
)
_CONFIG_RE = re.compile(
    r"^(?P<system>[^\s-]\S*)-(?P<harness>[A-Za-z][A-Za-z0-9]*)_k_(?P<level>99|99_9)_(?P<power>MaxP|MaxQ)"
    r"-(?P<scenario>[A-Za-z]+)$"
)
CONFIG_FORM = "<system name>-<harness>_<k_99|k_99_9>_<MaxP|MaxQ>-<Offline|Server|SingleStream|MultiStream>"
NO_ACCURACY = "No accuracy results in PerformanceOnly mode."
NO_PERFORMANCE = "Cannot find performance result. Maybe you are running in AccuracyOnly mode."


@dataclass(frozen=True)
class PerfMessage:
    key: str | None
    value: float | None
    validity: str | None  # None (with key and value): the run was AccuracyOnly, it has no performance result
    source: str = ""  # where it was read (file, and line or entry), for errors that name it

    @property
    def accuracy_only(self) -> bool:
        return self.validity is None


@dataclass(frozen=True)
class AccuracyMessage:
    value: float | None
    threshold: float | None
    passed: bool | None  # None: the run was PerformanceOnly
    source: str = ""  # where it was read (file, and line or entry), for errors that name it


@dataclass(frozen=True)
class ConfigName:
    """A config name as NVIDIA's code/main.py joins it: system name, workload setting, scenario."""

    name: str
    system: str
    harness: str  # custom, lwis, triton, hetero, or a site's own
    level: str  # the accuracy target: "99" or "99.9"
    power: str  # MaxP or MaxQ
    scenario: str


def parse_config_name(name: str, where: str = "<config>") -> ConfigName:
    match = _CONFIG_RE.match(name)
    if not match or match.group("scenario") not in RESULT_KEYS:
        raise ParseError(where, f"config name {clean(name, 160)!r} is not '{CONFIG_FORM}'")
    return ConfigName(
        name=name,
        system=match.group("system"),
        harness=match.group("harness"),
        level=match.group("level").replace("_", "."),
        power=match.group("power"),
        scenario=match.group("scenario"),
    )


def parse_perf_message(message: str, where: str = "<message>") -> PerfMessage:
    if message.strip() == NO_PERFORMANCE:
        return PerfMessage(None, None, None, where)
    match = _PERF_RE.match(message.strip())
    if not match:
        raise ParseError(
            where, f"unrecognised perf result {message!r} (expected '<key>: <value>, Result is VALID|INVALID')"
        )
    value = _figure(match.group("value"), where)
    if value < 0:  # a rate or a latency
        raise ParseError(where, f"{match.group('key')} is {value:g}: a negative result")
    return PerfMessage(match.group("key"), value, match.group("validity"), where)


def _figure(text: str, where: str) -> float:
    try:
        return finite(text)
    except ValueError as exc:
        raise ParseError(where, str(exc)) from None


_RAISED_RE = re.compile(
    r"^RuntimeError: (?P<message>Accuracy = \S+, Threshold = \S+\. Accuracy test FAILED)!\s*$", re.MULTILINE
)


def raised_accuracy_failure(text: str, where: str = "<output>") -> AccuracyMessage | None:
    """The exception NVIDIA's main.py raises when an accuracy check FAILS (check_accuracy: "Accuracy = v,
    Threshold = t. Accuracy test FAILED!"), the last one in a step's output, as the message it would have written;
    None when the output has none (the step failed some other way)."""
    found = list(_RAISED_RE.finditer(text))
    return parse_accuracy_message(found[-1].group("message"), where) if found else None


def parse_accuracy_message(message: str, where: str = "<message>") -> AccuracyMessage:
    text = message.strip()
    if text == NO_ACCURACY:
        return AccuracyMessage(None, None, None, where)
    match = _ACC_RE.match(text)
    if not match:
        raise ParseError(where, f"unrecognised accuracy result {message!r}")
    value, threshold = _figure(match.group("value"), where), _figure(match.group("threshold"), where)
    passed = match.group("verdict") == "PASSED"
    if threshold <= 0:
        raise ParseError(where, f"threshold {threshold:g} is not above 0")
    # main.py compares the unrounded figures and prints both to 3 decimals: rounding keeps PASSED's value >= its
    # threshold, but can print a FAILED value just below the threshold as equal to it.
    if passed and value < threshold:
        raise ParseError(where, f"says PASSED but accuracy {value:g} < threshold {threshold:g}: it contradicts itself")
    if not passed and value > threshold:
        raise ParseError(where, f"says FAILED but accuracy {value:g} > threshold {threshold:g}: it contradicts itself")
    return AccuracyMessage(value, threshold, passed, where)


def parse_entry(kind: str, config: str, benchmark: str, message: str, where: str) -> PerfMessage | AccuracyMessage:
    """One {config: {benchmark: message}} entry of the JSON files or the printed blocks, held to its config name:
    the perf key must be LoadGen's result key for the config's scenario, and a benchmark named with an accuracy
    level (bert-99.9) must have the config's."""
    name = parse_config_name(config, where)
    level = benchmark.rpartition("-")[2] if benchmark.endswith(("-99", "-99.9")) else None
    if level is not None and level != name.level:
        raise ParseError(
            where, f"benchmark {clean(benchmark, 60)!r} has accuracy target {level}, its config {name.level}"
        )
    if kind == "accuracy":
        return parse_accuracy_message(message, where)
    perf = parse_perf_message(message, where)
    if perf.key is not None and perf.key not in RESULT_KEYS[name.scenario]:
        raise ParseError(
            where,
            f"perf key {perf.key!r} is not LoadGen's result key for a {name.scenario} config "
            f"({' or '.join(RESULT_KEYS[name.scenario])})",
        )
    return perf


@dataclass
class HarnessSummary:
    """{config name: {benchmark: parsed message}} for perf and accuracy."""

    perf: dict[str, dict[str, PerfMessage]]
    accuracy: dict[str, dict[str, AccuracyMessage]]


def parse_summary_json(path: Path | str, kind: str) -> dict[str, dict]:
    """perf_harness_summary.json (kind='perf') or accuracy_summary.json (kind='accuracy')."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise ParseError(path, "expected an object of {config name: {benchmark: message}}")
    out: dict[str, dict] = {}
    for config, benches in data.items():
        if not isinstance(benches, dict):
            raise ParseError(path, f"config {config!r}: expected an object of benchmark messages")
        parse_config_name(config, str(path))
        for bench, msg in benches.items():
            if not isinstance(msg, str):
                raise ParseError(path, f"[{config}/{bench}]: the message is {type(msg).__name__}, not a string")
        out[config] = {
            bench: parse_entry(kind, config, bench, msg, f"{path} [{config}/{bench}]") for bench, msg in benches.items()
        }
    return out


def parse_stdout(path: Path | str) -> HarnessSummary:
    """The two banner blocks at the end of `make run_harness` output (stdout.txt or a console log)."""
    path = Path(path)
    lines = read_text(path).splitlines()
    perf: dict[str, dict[str, PerfMessage]] = {}
    accuracy: dict[str, dict[str, AccuracyMessage]] = {}
    target: dict | None = None
    kind = None
    config = None
    seen = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if line.startswith("=") and PERF_BANNER in line:
            target, kind, config = perf, "perf", None
            seen.add("perf")
            continue
        if line.startswith("=") and ACC_BANNER in line:
            target, kind, config = accuracy, "accuracy", None
            seen.add("accuracy")
            continue
        if target is None or not line.strip():
            continue
        if not line.startswith(" ") and line.endswith(":"):
            config = line[:-1]
            target.setdefault(config, {})
            continue
        if line.startswith("    ") and config is not None:
            bench, sep, message = line.strip().partition(": ")
            if not sep:
                raise ParseError(path, f"expected '<benchmark>: <message>', found {line.strip()!r}", line=number)
            target[config][bench] = parse_entry(kind, config, bench, message, f"{path}:{number}")
            continue
        # Anything else ends the block (make's own lines follow it).
        target, config = None, None
    if not seen:
        raise ParseError(path, "no 'Perf harness results' or 'Accuracy results' block: the run did not finish")
    return HarnessSummary(perf=perf, accuracy=accuracy)
