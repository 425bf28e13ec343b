"""Stand-in for NVIDIA's mlperf_common package, for tests only.

The real one (github NVIDIA/mlperf-common, pinned by NVIDIA's requirements.txt) is installed in NVIDIA's
training images and is not on PyPI. NVIDIA's BERT mlperf_logger.py needs two things of it: MLLoggerWrapper
(mlperf_common.logging) and PyTCommunicationHandler (mlperf_common.frameworks.pyt). This stand-in has those,
writing real MLLOG lines through the real mlperf_logging package.
"""
