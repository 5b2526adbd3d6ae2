#!/usr/bin/env bash
# Makes sure .venv-official/ holds the oracle environment for the official
# DeepLab code (research/deeplab, TF1 graph mode + tf-slim): Python 3.11,
# tensorflow-cpu 2.15, tf-keras 2.15, tf-slim 1.1.0, numpy<2, plus a copy of
# ../shared/official_deeplab patched for TF 2.15 by its patch_for_tf215.sh
# (import-only patches). Cached: reinstalls only when this script or the
# shared tree's patch script changes. Used by bench/official_parity.py and
# tests/bench/test_official_parity.py; the product never depends on it.
# Usage: bash scripts/ensure_official_venv.sh   (prints the venv path last)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${DEEPLAB_OFFICIAL_DIR:-${REPO_ROOT}/../shared/official_deeplab}"
VENV="${DEEPLAB_OFFICIAL_VENV:-${REPO_ROOT}/.venv-official}"
PYTHON_BIN="${PYTHON_OFFICIAL:-$(command -v python3.11 || true)}"
PKGS=('tensorflow-cpu==2.15.*' 'tf-keras==2.15.*' 'tf-slim==1.1.0' 'numpy<2')

if [ ! -f "${SHARED}/patch_for_tf215.sh" ]; then
  echo "[ensure_official_venv] ${SHARED}/patch_for_tf215.sh not found: the official tree must lie in ../shared/official_deeplab" >&2
  exit 2
fi
if [ -z "${PYTHON_BIN}" ]; then
  echo "[ensure_official_venv] python3.11 not on the PATH (tensorflow-cpu 2.15 needs Python 3.9-3.11); set PYTHON_OFFICIAL" >&2
  exit 2
fi
WANT="$(cat "${BASH_SOURCE[0]}" "${SHARED}/patch_for_tf215.sh" "${SHARED}/tfshim.py" | sha256sum | cut -c1-16)"
STAMP="${VENV}/.official-stamp"
# One creator at a time (pytest workers or two shells): flock on a lock file.
mkdir -p "$(dirname "${VENV}")"
exec 9>"${VENV}.lock"
flock 9
if [ ! -f "${STAMP}" ] || [ "$(cat "${STAMP}")" != "${WANT}" ]; then
  echo "[ensure_official_venv] creating ${VENV} (downloads ~600 MB the first time)" >&2
  rm -rf "${VENV}"
  "${PYTHON_BIN}" -m venv "${VENV}"
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "${PKGS[@]}" >&2
  bash "${SHARED}/patch_for_tf215.sh" "${VENV}/official" >&2
  cp "${SHARED}/tfshim.py" "${VENV}/official/tfshim.py"
  echo "${WANT}" > "${STAMP}"
fi
echo "${VENV}"
