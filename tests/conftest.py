"""Shared pytest fixtures.

Tests may read third-party files from `../shared/fixtures` (see its
MANIFEST.md); the product never does.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> pathlib.Path:
  """Path of `../shared/fixtures`; skips the test when it is absent."""
  if not SHARED_FIXTURES.is_dir():
    pytest.skip(f"third-party fixtures not found at {SHARED_FIXTURES}")
  return SHARED_FIXTURES
