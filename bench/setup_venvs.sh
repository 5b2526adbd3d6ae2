#!/usr/bin/env bash
# Creates the separate virtual environments that the benchmarks compare
# against. They cannot share .venv: tf-models-official 2.20 pins
# tensorflow~=2.20.0 and Keras 2 (tf_keras), and keras-hub pulls the full
# `tensorflow` wheel through tensorflow-text.
#
#   bash bench/setup_venvs.sh            # both
#   bash bench/setup_venvs.sh garden     # TF Model Garden only
#   bash bench/setup_venvs.sh kerashub   # keras-hub only
set -euo pipefail
cd "$(dirname "$0")"
PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
WHICH="${1:-all}"

make_venv() {  # name, packages...
  local name="$1"; shift
  if [ -f ".venv-${name}/.complete" ]; then echo "bench/.venv-${name} ready"; return; fi
  "${PYTHON_BIN}" -m venv ".venv-${name}"
  ".venv-${name}/bin/python" -m pip install --quiet --upgrade pip
  ".venv-${name}/bin/python" -m pip install --quiet "$@"
  touch ".venv-${name}/.complete"
  echo "bench/.venv-${name} ready"
}

if [ "${WHICH}" = all ] || [ "${WHICH}" = garden ]; then
  make_venv garden "tf-models-official~=2.20.0" "tensorflow~=2.20.0"
fi
if [ "${WHICH}" = all ] || [ "${WHICH}" = kerashub ]; then
  make_venv kerashub "keras-hub" "tensorflow~=2.21.0"
fi
