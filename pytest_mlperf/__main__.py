"""python -m pytest_mlperf: the pytest-mlperf command."""

import sys

from .cli import main

sys.exit(main())
