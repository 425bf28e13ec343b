"""MLPerf Training v2.1 BERT: each trial must converge to 0.720 masked-LM accuracy.

pytest suites -m training --sku A100-SXM-80GBx8
"""

import pytest


@pytest.mark.training
def test_training(mlperf_case, mlperf_run):
    """Converged = run_stop status success, reached with an eval_accuracy at or above the target."""
    result = mlperf_run(mlperf_case)
    assert result.verdict.ok, result.verdict.reason
