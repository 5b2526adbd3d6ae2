#!/usr/bin/env bash
# Sourced by the entry-point scripts: makes sure .venv exists and holds the
# project (editable) with the extras named in DEEPLAB_EXTRAS (default: test).
# Reinstalls when setup.py changes. Needs only Python 3.10+ on the PATH.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REPO_ROOT}/.venv"
EXTRAS="${DEEPLAB_EXTRAS:-test}"
PYTHON_BIN="${PYTHON:-$(command -v python3.11 || command -v python3)}"
STAMP="${VENV}/.deeplab-install-stamp"
WANT="$(cat "${REPO_ROOT}/setup.py" | sha256sum | cut -c1-16)-${EXTRAS}"

if [ ! -x "${VENV}/bin/python" ]; then
  echo "[ensure_venv] creating ${VENV} with ${PYTHON_BIN}"
  "${PYTHON_BIN}" -m venv "${VENV}"
fi
if [ ! -f "${STAMP}" ] || [ "$(cat "${STAMP}")" != "${WANT}" ]; then
  echo "[ensure_venv] installing deeplab[${EXTRAS}] into ${VENV} (first run takes a few minutes)"
  "${VENV}/bin/python" -m pip install --quiet --upgrade pip
  "${VENV}/bin/python" -m pip install --quiet -e "${REPO_ROOT}[${EXTRAS}]"
  echo "${WANT}" > "${STAMP}"
fi
export PATH="${VENV}/bin:${PATH}"
