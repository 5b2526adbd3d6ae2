#!/usr/bin/env bash
# Runs the whole pytest suite, creating .venv first when it is missing.
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_venv.sh
exec python -m pytest -q -p no:cacheprovider "$@"
