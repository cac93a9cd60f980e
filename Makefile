# The two commands of a new user (see README.md):
#   make test    build what is missing, then run the whole test matrix
#   make bench   build what is missing, then run the benchmark on free-threaded CPython
# Both start with `make bootstrap`, which skips whatever is already built.

SHELL := /bin/bash
ENVS := ft gil pypy
STAMP := .ft_utils-installed
SOURCES := $(shell find csrc ft_utils -type f \( -name '*.c' -o -name '*.h' -o -name '*.py' -o -name '*.pyi' \)) \
           setup.py pyproject.toml cffi_build.py
BOOTSTRAP_SCRIPTS := scripts/bootstrap.sh scripts/build_freethreaded_cpython.sh

.PHONY: bootstrap test test-tsan bench bench-all ctest soak clean

bootstrap: $(ENVS:%=.venv/%/$(STAMP))

# One virtual environment per interpreter, rebuilt when a source changes.
.venv/%/$(STAMP): $(SOURCES) $(BOOTSTRAP_SCRIPTS)
	scripts/bootstrap.sh $*
	touch $@

test: bootstrap
	scripts/run_tests.sh

ctest:
	scripts/run_tests.sh --c-only

# Every type at once under many threads for minutes, conservation and memory checked
# (tests/soak.py): SOAK_SECONDS on free-threaded CPython, a quarter of it on each other
# interpreter/backend (see scripts/soak.sh).
SOAK_SECONDS ?= 180
soak: bootstrap
	SOAK_SECONDS=$(SOAK_SECONDS) scripts/soak.sh

# The native extension under ThreadSanitizer, in a CPython built with it (see the script).
test-tsan:
	scripts/test_tsan.sh

# BENCH_ARGS go to python -m ft_utils.bench (e.g. BENCH_ARGS=--quick; --help lists them).
bench: .venv/ft/$(STAMP)
	.venv/ft/bin/python -m ft_utils.bench --peers $(BENCH_ARGS)

# The benchmark on every interpreter (each with every backend it has), then one table
# of them all; each run's report and JSON land in build/bench/ (see the script).
bench-all: bootstrap
	scripts/bench_all.sh $(BENCH_ARGS)

clean:
	rm -rf build .venv ft_utils/*.so ft_utils.egg-info .hypothesis
