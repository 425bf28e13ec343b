"""Stand-in for mlperf_common.frameworks (see mlperf_common's docstring)."""
