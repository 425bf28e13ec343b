"""MLPerf Training v2.1 BERT: each trial must converge to 0.720 masked-LM accuracy, and the trials of a config
together must make a valid MLPerf score.

pytest suites -m training --sku A100-SXM-80GBx8 --mlperf-training-code DIR --mlperf-bert-data DIR
pytest-mlperf run -m training ...   (installed, from anywhere: pytest --pyargs pytest_mlperf.suites -m training ...)
"""

import pytest


@pytest.mark.training
def test_training(mlperf_case, mlperf_run):
    """Converged = run_stop status success, reached with an eval_accuracy at or above the target."""
    result = mlperf_run(mlperf_case)
    assert result.verdict.ok, result.verdict.reason


@pytest.mark.training
def test_training_score(mlperf_score_case, mlperf_score):
    """The olympic mean of run_stop - run_start over the config's trials; more than one non-converged trial
    makes the result invalid."""
    result = mlperf_score(mlperf_score_case)
    assert result.verdict.ok, result.verdict.reason
