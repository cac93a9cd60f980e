"""python -m ft_utils.bench.combine FILE.json...: one table of several runs of
``python -m ft_utils.bench --json`` (make bench-all: one per interpreter)."""

import sys

from ft_utils.bench.report import combine_main

if __name__ == "__main__":
    sys.exit(combine_main())
