"""The MLPerf suites users run, installed with the plugin as the package pytest_mlperf.suites.

From a checkout:         pytest suites -m inference --sku A100-SXM-80GBx8
From anywhere (a wheel): pytest --pyargs pytest_mlperf.suites -m inference --sku A100-SXM-80GBx8
                         pytest-mlperf run -m inference --sku A100-SXM-80GBx8   (the same, shorter)
"""
