#!/usr/bin/env bash
# Runs the whole pytest suite, creating .venv first when it is missing.
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_venv.sh
# Quieter TensorFlow C++ logs in the test process (the apps decide for
# themselves: common_flags silences CUDA probe errors on CPU-only machines).
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# One pytest worker per core (at most 4), each test file kept on one worker
# so its module fixtures (trained checkpoints, demo data) are built once,
# files handed out in collection order (tests/conftest.py puts the longest
# first); DEEPLAB_TEST_WORKERS=0 runs everything in this process.
cores="$(nproc 2>/dev/null || echo 2)"
workers="${DEEPLAB_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}"
exec python -m pytest -q -p no:cacheprovider -n "${workers}" --dist loadfile \
  --no-loadscope-reorder "$@"
