"""MLPerf Inference v2.0: one test per benchmark x scenario x mode x harness of the chosen system.

pytest suites -m inference --sku A100-SXM-80GBx8                       (in a checkout)
pytest --pyargs pytest_mlperf.suites -m inference --sku A100-SXM-80GBx8   (installed, from anywhere)
pytest-mlperf run -m "inference and bert and server" --sku A100-SXM-80GBx8 --mlperf-results=DIR
"""

import pytest


@pytest.mark.inference
def test_inference(mlperf_case, mlperf_run):
    """Accuracy runs must PASS their target; performance runs must be VALID under LoadGen's rules."""
    result = mlperf_run(mlperf_case)
    assert result.verdict.ok, result.verdict.reason
