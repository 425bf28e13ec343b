"""The pytest face of pytest-mlperf: hooks and fixtures only. The session (session.py) holds the run's state,
the runner (runner.py) judges cases, the reporter (report/) writes what they found."""

from __future__ import annotations

import pytest

from . import catalog, installed, options
from .fleet import fleet_params, fleet_selection
from .machine import gpu, native
from .report.junit import suite_properties
from .runner import Runner, case_of, record_for_report, settle_trial
from .session import MlperfSession

SESSION_KEY = pytest.StashKey[MlperfSession]()


def _session(config: pytest.Config) -> MlperfSession | None:
    return config.stash.get(SESSION_KEY, None)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlperf", "MLPerf benchmarks (pytest-mlperf)")
    for add in (
        options.add_selection_options,
        options.add_local_options,
        options.add_nvidia_options,
        options.add_training_options,
        options.add_gate_options,
    ):
        add(group.addoption)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config):
    """A fleet controller runs its tests in one process: -n N goes to the nodes, whose pytest gets the same
    command line, and not to the controller (its tests wait for jobs; two workers would submit them twice)."""
    if config.getoption("mlperf_fleet", "off") != "off" and hasattr(config.option, "numprocesses"):
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []  # -n, --dist, --tx alike
        config.option.distload = False
    return (yield)


@pytest.hookimpl(trylast=True)  # after the tmp_path and junitxml plugins have configured
def pytest_configure(config: pytest.Config) -> None:
    markers: dict[str, str] = {}
    for round_name in catalog.ROUNDS:  # every round's, so that -m names a later round's model under strict markers
        for name, text in catalog.load(round_name).marker_help.items():
            markers.setdefault(name, text)
    for name, text in markers.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if config.option.help:
        return
    header = getattr(config, "workerinput", {}).get("mlperf_header")  # an xdist worker: the controller's
    session = MlperfSession(config, options.Options.from_config(config), header)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session.reporter, "mlperf_reporter")  # it collects the records as they come
    if config.pluginmanager.hasplugin("html"):
        from .report.html import HtmlReport

        config.pluginmanager.register(HtmlReport(session.reporter), "mlperf_html")
    if config.pluginmanager.hasplugin("metadata"):  # pytest-html's Environment table
        from pytest_metadata.plugin import metadata_key

        for field, value in session.header["fingerprint"].items():
            if value is not None:
                config.stash[metadata_key][f"MLPerf {field}"] = str(value)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist's controller hands each worker the header it computed once (NVML, git, Docker)."""
    session = _session(node.config)
    if session is not None:
        node.workerinput["mlperf_header"] = session.header
        node.workerinput["mlperf_trials"] = str(session.trial_store.folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = _session(config)
    if session is not None:
        session.close()
        for name in ("mlperf_reporter", "mlperf_html"):
            if config.pluginmanager.has_plugin(name):
                config.pluginmanager.unregister(name=name)
        del config.stash[SESSION_KEY]


def pytest_sessionstart(session: pytest.Session) -> None:
    # Suite-level JUnit properties: junitxml creates its writer in its own pytest_configure.
    from _pytest.junitxml import xml_key

    mlperf, xml = _session(session.config), session.config.stash.get(xml_key, None)
    if mlperf is not None and xml is not None:
        for name, value in suite_properties(mlperf.header):
            xml.add_global_property(name, value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = _session(config)
    return session.header_lines() if session is not None else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argname in ("mlperf_case", "mlperf_score_case"):
        if argname in metafunc.fixturenames:
            metafunc.parametrize(argname, _params(metafunc, argname), scope="function")


def _params(metafunc: pytest.Metafunc, argname: str) -> list:
    session = _session(metafunc.config)
    kind = "training" if metafunc.definition.get_closest_marker("training") else "inference"
    cases = session.cases(kind)
    if argname == "mlperf_score_case":
        cases = catalog.score_cases(cases)
    if session.fleet is not None:
        cases = fleet_params(cases, session.fleet.nodes)
    params = []
    for case in cases:
        marks = [getattr(pytest.mark, name) for name in case.markers]
        group = case.id if isinstance(case, catalog.ScoreCase) else getattr(case, "score_id", None)
        if group and session.fleet is None and (isinstance(case, catalog.ScoreCase) or case.trial is not None):
            marks.append(pytest.mark.xdist_group(group))  # --dist loadgroup: a config's trials and score together
        params.append(pytest.param(case, marks=marks, id=case.id))
    if not params:
        where = f"system {session.system.sku}" if session.system else "this run"
        what = "training scores" if argname == "mlperf_score_case" else f"{kind} cases"
        reason = f"no {what} for {where} on the {session.backends[kind].name} backend ({session.reasons[kind]})"
        note = session.catalog.training_system_notes.get(session.system.sku) if session.system else None
        if kind == "training" and note:
            reason += f": {note}"
        skip = [getattr(pytest.mark, kind), pytest.mark.skip(reason=reason)]
        params.append(pytest.param(None, marks=skip, id=f"no-{kind}-cases"))
    return params


def pytest_collect_file(file_path, parent: pytest.Collector):
    return installed.suite_module(file_path, parent)  # the suites, whatever the user's python_files says


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    mlperf = _session(config)
    if mlperf is None:
        return
    if shared := installed.shared_ids(items):  # what the check before collection (clashing_files) cannot foresee
        nodeid, paths = shared[0]
        raise pytest.UsageError(
            f"{len(shared)} test id(s) such as {nodeid} name tests of two files, "
            f"{' and '.join(paths)}; rename yours (the suites' are test_inference.py and test_training.py)"
        )
    if mlperf.options.cases is not None:
        _only_listed_cases(mlperf.options.cases, config, items)
    mlperf.selected_trials = {case.id for case in map(case_of, items) if getattr(case, "trial", None)}
    if mlperf.fleet is not None:
        mlperf.fleet_selection = fleet_selection(map(case_of, items))


def _only_listed_cases(path, config: pytest.Config, items: list) -> None:
    """--mlperf-cases FILE: only the tests of the cases it lists; an id that no test has is an error."""
    try:
        wanted = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"{options.flag('cases')} {path}: cannot read it ({exc})") from None
    if not wanted:
        raise pytest.UsageError(f"{options.flag('cases')} {path}: lists no case id")
    found = {getattr(case_of(item), "id", None) for item in items}
    unknown = [case for case in wanted if case not in found]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise pytest.UsageError(
            f"{options.flag('cases')} {path}: {len(unknown)} of its case ids match no test here: {shown}"
        )
    keep = set(wanted)
    dropped = [item for item in items if getattr(case_of(item), "id", None) not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if getattr(case_of(item), "id", None) in keep]


@pytest.fixture
def mlperf_case(request: pytest.FixtureRequest):
    """The case (catalog.InferenceCase or catalog.TrainingCase) this test judges."""
    return request.param


@pytest.fixture
def mlperf_score_case(request: pytest.FixtureRequest):
    """The set of training trials (catalog.ScoreCase) whose MLPerf score this test judges."""
    return request.param


@pytest.fixture(scope="session")
def mlperf_session(pytestconfig: pytest.Config) -> MlperfSession:
    """The run's session: options, catalog, system, backends, header and reporter."""
    return _session(pytestconfig)


@pytest.fixture(scope="session")
def mlperf_gpus(mlperf_session: MlperfSession) -> gpu.Inventory:
    """The machine's GPUs through NVML; skips when there is no NVIDIA driver."""
    try:
        return mlperf_session.inventory()
    except gpu.NvmlUnavailable as exc:
        pytest.skip(f"no GPU inventory: {exc}")


@pytest.fixture(scope="session")
def mlperf_system(mlperf_session: MlperfSession, request: pytest.FixtureRequest) -> catalog.System:
    """The catalog system, checked against the machine (the GPUs --mlperf-gpus selects; a Jetson's device
    tree): a mismatch is an error naming both."""
    system = mlperf_session.system
    if system is not None and system.gpu.integrated:
        problem = native.jetson_mismatch(system.gpu.names)
        if problem:
            pytest.fail(f"{options.flag('sku')} {system.sku}: {problem}", pytrace=False)
        return system
    if mlperf_session.pinned_gpus:  # --mlperf-each-gpu: each GPU was checked against the system at the start
        return system
    mlperf_gpus = request.getfixturevalue("mlperf_gpus")
    system = system or gpu.match_sku(mlperf_gpus, mlperf_session.catalog)
    if system is None:
        pytest.fail(f"this machine ({gpu.describe(mlperf_gpus)}) matches no catalog SKU", pytrace=False)
    problems = gpu.system_mismatch(system, mlperf_gpus)
    if problems:
        pytest.fail(
            f"{options.flag('sku')} {system.sku} expects {system.count}x {system.gpu.names[0]}, detected "
            f"{gpu.describe(mlperf_gpus)}: " + "; ".join(problems),
            pytrace=False,
        )
    return system


@pytest.fixture
def mlperf_run(request: pytest.FixtureRequest, mlperf_session: MlperfSession):
    """Run (or replay) a case, judge it, attach its metrics to the reports, and return the CaseResult."""
    return Runner(mlperf_session, request).judge


@pytest.fixture
def mlperf_score(request: pytest.FixtureRequest, mlperf_session: MlperfSession):
    """Score a set of trials judged earlier in this session (MLPerf's olympic mean) and attach the metrics."""
    return Runner(mlperf_session, request).score


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    session = _session(item.config)
    if session is None:
        return report
    settle_trial(item, report, session)
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return report
    record = record_for_report(item, report, session)
    if record is None:
        return report
    report.mlperf = record.to_dict()  # plain data: pytest-xdist carries it to the controller
    if record.verdict is not None and item.config.pluginmanager.hasplugin("html"):
        from pytest_html import extras

        from .report.html import metrics_table

        report.extras = [*getattr(report, "extras", []), extras.html(metrics_table(record))]
    return report


@pytest.hookimpl(tryfirst=True)  # before junitxml writes its file: the peers' verdict is a suite property
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    mlperf = _session(session.config)
    if mlperf is None:
        return
    mlperf.close_backends()  # runs on a normal end, after failures and after Ctrl-C
    if hasattr(session.config, "workerinput"):
        return
    if mlperf.compare_peers():
        from _pytest.junitxml import xml_key

        slow = sorted(next(r for r in mlperf.reporter.peers if r.kind == "GPU").slow.items())
        xml = session.config.stash.get(xml_key, None)
        if xml is not None:
            xml.add_global_property("mlperf:slow_gpus", "; ".join(f"{g}: {', '.join(w)}" for g, w in slow))
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    stopped = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
    complete = not (stopped or session.shouldstop or session.shouldfail)
    save = mlperf.baseline_path_of(mlperf.options.save) if mlperf.options.save else None
    if save is not None and not complete:  # a stopped run never replaces a full baseline
        save = save.with_name(f"{save.stem}.partial.json")
    mlperf.reporter.write(mlperf.options.json, save, partial=not complete)
    lost = complete and mlperf.reporter.gate_failures()  # a stopped run has lost cases of its own making
    if (mlperf.reporter.nothing_judged() or lost) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a gate that checked nothing, or lost a case, fails


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    session = _session(config)
    if session is not None:
        session.reporter.terminal_summary(terminalreporter, session.options.json, exitstatus)
