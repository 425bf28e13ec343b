"""Hand argument lists to NVIDIA's own v2.0 argument parsing, and say what it made of each.

Run by tests/test_nvidia_commands.py as `python tests/nvidia_argcheck.py REQUESTS.json RESULTS.json`, with the
current directory at closed/NVIDIA of mlcommons/inference_results_v2.0, OUTSIDE_MLPINF_ENV=1 (so
code/common/constants.py skips `import tensorrt`) and PYTHONDONTWRITEBYTECODE=1 (nothing is written into the
tree). REQUESTS.json is a list of argument lists, each what follows `python3 code/main.py` in NVIDIA's Makefile
(RUN_ARGS and --action=...); RESULTS.json gets one answer for each.

Loaded for real from the tree: code/common/constants.py, code/common/arguments.py, code/common/fields.py
(MainArgs), and code/main.py's own parse_main_args function (compiled alone: the rest of main.py needs TensorRT
and a GPU). One stand-in: fields.py imports code.common.systems.system_list, whose import runs NVIDIA's hardware
detection (nvidia-smi, pycuda, lscpu); in its place is a module holding only what fields.py takes from it:
KnownSystem, an Enum whose members are the names system_list.py registers (its add_systems entries and its
system_confs["..."] entries, read from the file's syntax tree), and SystemClassifications, whose classmethods
(the same names as the file's) all answer False. Only argument parsing uses fields.py here; no classification
is asked.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import enum
import io
import json
import os
import sys
import types

TREE = os.getcwd()
SYSTEM_LIST = os.path.join(TREE, "code", "common", "systems", "system_list.py")
MAIN_PY = os.path.join(TREE, "code", "main.py")


def registered_systems(tree: ast.Module) -> list[str]:
    """KnownSystem's member names: each add_systems(name_format, id_format, cpu, gpu, counts, memory) call
    gives name_format.format(count) per count; each system_confs["NAME"] = ... gives NAME."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "add_systems":
            fmt, counts = ast.literal_eval(node.args[0]), ast.literal_eval(node.args[4])
            names += [fmt.format(count) for count in counts]
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and getattr(target.value, "id", None) == "system_confs"
                    and isinstance(target.slice, ast.Constant)
                ):
                    names.append(target.slice.value)
    return list(dict.fromkeys(names))


def classification_names(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "SystemClassifications":
            return [item.name for item in node.body if isinstance(item, ast.FunctionDef)]
    raise SystemExit(f"{SYSTEM_LIST}: no class SystemClassifications")


def install_system_list() -> None:
    """The stand-in for code.common.systems.system_list (see the module docstring)."""
    with open(SYSTEM_LIST, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), SYSTEM_LIST)
    module = types.ModuleType("code.common.systems.system_list")
    module.__file__ = SYSTEM_LIST
    module.KnownSystem = enum.Enum("KnownSystem", registered_systems(tree))
    answers = {name: classmethod(lambda cls, system=None: False) for name in classification_names(tree)}
    module.SystemClassifications = type("SystemClassifications", (), answers)
    sys.modules[module.__name__] = module


def main_parser_function(main_args):
    """code/main.py's parse_main_args, compiled from the file with the names it uses (argparse, MainArgs and
    main.py's module docstring, which is the parser's description)."""
    with open(MAIN_PY, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), MAIN_PY)
    doc = next(
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__doc__"
    )
    func = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "parse_main_args")
    namespace = {"argparse": argparse, "MainArgs": main_args, "__doc__": doc}
    exec(compile(ast.Module(body=[func], type_ignores=[]), MAIN_PY, "exec"), namespace)
    return namespace["parse_main_args"]


def load_nvidia():
    """NVIDIA's modules, from the tree (never the standard library's `code`)."""
    sys.path[0] = TREE
    for name in [name for name in sys.modules if name == "code" or name.startswith("code.")]:
        del sys.modules[name]
    install_system_list()
    import code.common.arguments as arguments
    import code.common.constants as constants
    from code.common.fields import MainArgs

    if not os.path.samefile(os.path.dirname(constants.__file__), os.path.join(TREE, "code", "common")):
        raise SystemExit(f"imported {constants.__file__}, not the tree's code/common/constants.py")
    return constants, arguments, main_parser_function(MainArgs)


def parse(argv: list[str], func):
    """func() with sys.argv as main.py would see it; argparse's refusal (SystemExit) as an error string."""
    saved, err = sys.argv, io.StringIO()
    sys.argv = ["code/main.py", *argv]
    try:
        with contextlib.redirect_stderr(err):
            return func(), None
    except SystemExit as exc:
        return None, f"SystemExit({exc.code}): {(err.getvalue().strip().splitlines() or [''])[-1]}"
    finally:
        sys.argv = saved


def name_of(member) -> str | None:
    return None if member is None else member.valstr()


def accuracy_value(constants, value) -> float | None:
    """AccuracyTarget(value).value, as main() builds it; None where that raises."""
    try:
        return constants.AccuracyTarget(value).value
    except ValueError:
        return None


def main_view(constants, main_args: dict) -> dict:
    """What main.py's main() builds its WorkloadSetting from, and what a --config_ver would make of it."""
    c = constants
    benchmark = c.Benchmark.get_match(main_args["benchmarks"] or "")
    view = {
        "action": main_args["action"],
        "benchmark": name_of(benchmark),
        "scenario": name_of(c.Scenario.get_match(main_args["scenarios"] or "")),
        "harness_type": name_of(c.HarnessType.get_match(main_args["harness_type"])),
        "accuracy_target": accuracy_value(c, main_args["accuracy_target"]),
        "power_setting": name_of(c.PowerSetting.get_match(main_args["power_setting"])),
        "config_ver": main_args["config_ver"],
        "config_ver_workloads": None,
    }
    if main_args["config_ver"] is not None and benchmark is not None:
        view["config_ver_workloads"] = [
            {
                "harness_type": name_of(setting.harness_type),
                "accuracy_target": setting.accuracy_target.value,
                "power_setting": name_of(setting.power_setting),
            }
            for setting in (
                c.config_ver_to_workload_setting(benchmark, ver) for ver in main_args["config_ver"].split(",")
            )
        ]
    return view


def overrides(constants, arguments, argv: list[str], main_args: dict) -> dict:
    """The overrides the action's handler applies (code/main.py): handle_run_harness parses
    getScenarioBasedHarnessArgs(scenario), handle_generate_engine GENERATE_ENGINE_ARGS; run_harness's second
    line, scripts/print_harness_result.py (given RUN_ARGS without --action), parses ["log_dir"]."""
    out: dict = {}
    if main_args["action"] == "generate_engines":
        parsed, out["error"] = parse(argv, lambda: arguments.parse_args(arguments.GENERATE_ENGINE_ARGS))
        return out
    scenario = constants.Scenario.get_match(main_args["scenarios"] or "")
    if scenario is None:
        return {"error": f"no scenario matches {main_args['scenarios']!r}"}
    parsed, out["error"] = parse(argv, lambda: arguments.parse_args(arguments.getScenarioBasedHarnessArgs(scenario)))
    if parsed is not None:
        for key in ("test_mode", "log_dir", "server_target_qps", "fast"):
            out[key] = parsed[key]
        out["server_target_qps_type"] = type(parsed["server_target_qps"]).__name__
    rest = [word for word in argv if not word.startswith("--action")]
    printed, out["print_harness_result_error"] = parse(rest, lambda: arguments.parse_args(["log_dir"]))
    out["print_harness_result_log_dir"] = printed and printed["log_dir"]
    return out


def check(argv: list[str], constants, arguments, parse_main_args) -> dict:
    main_args, error = parse(argv, parse_main_args)
    if main_args is None:
        return {"argv": argv, "main_error": error}
    return {
        "argv": argv,
        "main_error": None,
        "main": main_view(constants, main_args),
        "overrides": overrides(constants, arguments, argv, main_args),
    }


def run(requests_path: str, results_path: str) -> None:
    constants, arguments, parse_main_args = load_nvidia()
    with open(requests_path, encoding="utf-8") as fh:
        requests = json.load(fh)
    with contextlib.redirect_stdout(sys.stderr):
        results = [check(list(argv), constants, arguments, parse_main_args) for argv in requests]
    with open(results_path, "w", encoding="utf-8") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
