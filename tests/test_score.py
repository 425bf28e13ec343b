"""MLPerf's training score across trials: the olympic mean, and when a set of trials has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlperf.catalog import TrainingCase, load, score_cases
from pytest_mlperf.judge.verdict import TrialOutcome, training_score


def _trials(minutes, failed=()):
    return [TrialOutcome(f"t{i}", i not in failed, m if i not in failed else None) for i, m in enumerate(minutes)]


def test_olympic_mean_drops_fastest_and_slowest():
    verdict, score = training_score(_trials([10, 20, 12, 14, 16, 11, 13, 15, 17, 30]))
    assert verdict.ok and score == pytest.approx((10 + 12 + 14 + 16 + 11 + 13 + 15 + 17 + 20 + 30 - 10 - 30) / 8)
    assert verdict.details["dropped"] == ["t0", "t9"]
    assert "olympic mean of 8 of 10 runs (fastest 10.00 and slowest 30.00 dropped)" in verdict.reason


def test_one_non_converged_run_is_the_slowest_and_dropped():
    verdict, score = training_score(_trials([10, 20, 12, 14, 16, 11, 13, 15, 17, 30], failed={3}))
    assert verdict.ok and verdict.details["dropped"] == ["t0", "t3"]
    assert score == pytest.approx((20 + 12 + 16 + 11 + 13 + 15 + 17 + 30) / 8)
    assert "slowest not converged dropped" in verdict.reason


def test_more_than_one_non_converged_run_is_invalid():
    verdict, score = training_score(_trials([10, 20, 12, 14, 16, 11, 13, 15, 17, 30], failed={3, 7}))
    assert not verdict.ok and score is None
    assert verdict.reason == "INVALID: 2 of 10 runs did not converge (at most one may): t3, t7"


def test_a_gate_of_one_or_two_runs_needs_every_run_converged():
    verdict, score = training_score(_trials([12.5]), partial_ok=True)
    assert verdict.ok and score == 12.5 and verdict.details["partial"]
    assert verdict.reason == (
        "SCORE 12.500 min (partial: 1 of the 10 runs an MLPerf BERT score needs, accepted by "
        "--mlperf-partial-scores): mean of 1 run (too few to drop any)"
    )
    two = [TrialOutcome("t0", True, 10.0), TrialOutcome("t1", False, None, "NOT CONVERGED")]
    verdict, score = training_score(two, partial_ok=True)
    assert not verdict.ok and verdict.reason == "INVALID: not converged: t1 (NOT CONVERGED)"
    assert training_score([], partial_ok=True)[0].reason == "INVALID: no trials to score"


def test_fewer_runs_than_mlperf_needs_are_a_partial_score_that_fails_unless_accepted():
    verdict, score = training_score(_trials([12.5]))
    assert not verdict.ok and verdict.label == "PARTIAL" and score == 12.5
    assert verdict.reason == (
        "PARTIAL: 1 of the 10 runs an MLPerf BERT score needs, so 12.500 min (mean of 1 run (too few to drop any)) "
        "is not an MLPerf score; run --mlperf-nexp 10, or accept a partial score with --mlperf-partial-scores"
    )
    nine = _trials([10, 20, 12, 14, 16, 11, 13, 15, 17])
    verdict, score = training_score(nine)
    assert not verdict.ok and verdict.label == "PARTIAL" and "9 of the 10 runs" in verdict.reason
    assert "olympic mean of 7 of 9 runs" in verdict.reason
    verdict, _ = training_score(nine, partial_ok=True)
    assert verdict.ok and verdict.label == "SCORED" and verdict.details["partial"]


def test_a_partial_score_is_never_reported_as_an_mlperf_score():
    """The figure of a partial score is partial_score in the metrics (JSON, JUnit, baselines), never
    mlperf_score, and a node's record claiming an mlperf_score over fewer runs is refused."""
    from pytest_mlperf.catalog import ScoreCase
    from pytest_mlperf.judge.evaluate import evaluate_score
    from pytest_mlperf.judge.verdict import record_problem

    case = ScoreCase("bert-local-mlm", ("t0",), None, 0.72)
    for ok in (False, True):
        result = evaluate_score(case, _trials([12.5]), partial_ok=ok)
        names = [m.name for m in result.metrics]
        assert "partial_score" in names and "mlperf_score" not in names
    full = evaluate_score(case, _trials([10, 20, 12, 14, 16, 11, 13, 15, 17, 30]))
    assert full.verdict.label == "SCORED" and full.metrics[0].name == "mlperf_score"
    lie = {
        "ok": True,
        "verdict": "SCORED",
        "metrics": [{"name": "mlperf_score", "value": 12.5}, {"name": "runs", "value": 1.0}],
    }
    assert record_problem(case, lie) == "SCORED with mlperf_score over 1.0 runs (an MLPerf score needs 10)"


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.lists(st.floats(1.0, 100.0), min_size=0, max_size=14),
    failed=st.sets(st.integers(0, 13), max_size=3),
    copies=st.booleans(),
)
def test_fewer_runs_never_score_unless_accepted(minutes, failed, copies):
    """Whatever the runs: fewer than ten never SCORE without partial_ok; with partial_ok the verdict changes only
    for those fewer; copies of one run are never scored."""
    trials = _trials(minutes, failed=failed)
    if copies and trials:
        trials = [*trials, TrialOutcome("copy", trials[0].converged, trials[0].minutes, identity="seed|1")]
        trials[0] = TrialOutcome(trials[0].id, trials[0].converged, trials[0].minutes, identity="seed|1")
    strict, _ = training_score(trials)
    lenient, _ = training_score(trials, partial_ok=True)
    if len(trials) < 10:
        assert not strict.ok
    else:
        assert strict == lenient
    if copies and trials:
        assert not strict.ok and not lenient.ok and strict.label == "INVALID"
    if lenient.ok:
        assert lenient.label == "SCORED" and lenient.details["partial"] == (len(trials) < 10)


def test_score_cases_group_trials_by_set_and_config():
    cat = load()
    config = cat.training_config("1x8x56x1")
    trials = cat.training_trials(config, "A100-SXM-80GBx8", 3)
    assert [t.id for t in trials] == ["bert-1x8x56x1-trial_1", "bert-1x8x56x1-trial_2", "bert-1x8x56x1-trial_3"]
    published = [TrainingCase(config=config, trial=f"setA/result_{i}", group="setA") for i in range(2)]
    untried = TrainingCase(config=config)  # a replay found nothing for it: no trial, no score
    scores = {s.id: s.trials for s in score_cases([*trials, *published, untried])}
    assert scores == {
        "bert-1x8x56x1": tuple(t.id for t in trials),
        "bert-1x8x56x1-setA": ("bert-1x8x56x1-setA/result_0", "bert-1x8x56x1-setA/result_1"),
    }


def test_config_selection_by_sku_and_nodes():
    cat = load()
    assert cat.select_training_config("A100-SXM-80GBx8", 1).name == "1x8x56x1"
    assert cat.select_training_config("A100-SXM-80GBx8", 8).name == "8x8x48x1"
    with pytest.raises(Exception, match=r"A100-SXM-80GBx4 on 1 node.*no v2.1 BERT config for the DGX Station A100"):
        cat.select_training_config("A100-SXM-80GBx4", 1)  # 1x4x56x2 is four GPUs of a DGX A100
    assert cat.select_training_config("A30x8", 1).name == "A30_1x2x224x14"
    with pytest.raises(Exception, match=r"no training config for A2x2 on 1 node\(s\); the catalog has: none"):
        cat.select_training_config("A2x2", 1)


def test_compliance_checker_findings_on_published_logs(training_fixtures, tmp_path):
    """mlperf-logging's checker on real v2.1 logs: a converged run fails only on the known key rename; an aborted
    one also fails the eval_accuracy >= 0.720 rule, which is reported as a finding."""
    from pytest_mlperf.gate import compliance

    if not compliance.installed():
        pytest.skip("mlperf-logging is not installed (pip install 'pytest-mlperf[compliance]')")
    good = compliance.check(training_fixtures / "dgxa100_ngc22.09_pytorch/bert/result_0.txt", tmp_path / "a")
    assert good.status == "KNOWN RENAME ONLY" and good.findings == []
    assert good.known == [compliance.KNOWN_RENAME] and Path(good.log).is_file()
    aborted = compliance.check(training_fixtures / "dgxh100_preview/bert/result_3.txt", tmp_path / "b")
    assert aborted.status == "FAILED"
    assert any("eval_accuracy" in f and "0.720" in f for f in aborted.findings), aborted.findings
    assert not list(Path.cwd().glob("compliance_checker.log"))


def test_file_lock_excludes_and_leaves_no_file(tmp_path):
    """Stamps' locks: one holder at a time across processes, and no lock file left once everyone is done."""
    import multiprocessing

    from pytest_mlperf.machine.datasets import file_lock

    lock, log = tmp_path / "state" / "step.lock", tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_hold, args=(lock, log, i)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    events = log.read_text().split()
    # enter/leave pairs never interleave
    assert len(events) == 8 and all(events[i][1:] == events[i + 1][1:] for i in range(0, 8, 2))
    assert all(events[i][0] == "+" and events[i + 1][0] == "-" for i in range(0, 8, 2))
    assert not lock.exists()
    with file_lock(lock):
        assert lock.exists()
    assert not lock.exists()


def _hold(lock, log, i):
    import time

    from pytest_mlperf.machine.datasets import file_lock

    with file_lock(lock):
        with log.open("a") as fh:
            fh.write(f"+{i}\n")
        time.sleep(0.05)
        with log.open("a") as fh:
            fh.write(f"-{i}\n")
