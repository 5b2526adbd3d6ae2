"""Shared pytest fixtures.

Tests may read third-party files from `../shared/fixtures` (see its
MANIFEST.md); the product never does.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

# Two logical CPU devices, so MirroredStrategy can be tested without GPUs.
# This must happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> pathlib.Path:
  """Path of `../shared/fixtures`; skips the test when it is absent."""
  if not SHARED_FIXTURES.is_dir():
    pytest.skip(f"third-party fixtures not found at {SHARED_FIXTURES}")
  return SHARED_FIXTURES


@pytest.fixture
def tiny_model_config():
  """A small but complete DeepLabv3+ (ASPP lite + decoder) for fast tests."""
  from deeplab.core import config  # pylint: disable=g-import-not-at-top
  return config.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, output_stride=16,
      decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=16,
      decoder_filters=16, low_level_filters=8, batch_norm_momentum=0.9)



# The longest test files, longest first (durations of the whole suite on 2
# cores). scripts/run_tests.sh runs pytest-xdist with `--dist loadfile
# --no-loadscope-reorder`: each file stays on one worker and files are
# handed out in collection order, so starting these first lets the many
# short files fill the end and keeps both workers busy to the last minute.
# Only the order changes; a renamed file merely loses its head start.
_LONGEST_FIRST = (
    "core/training/test_runner.py",
    "bench/test_official_parity.py",
    "apps/test_export_eval_apps.py",
    "core/test_export_parity.py",
    "apps/test_reliability.py",
    "apps/test_train_app.py",
    "core/test_multi_worker.py",
    "apps/test_apps.py",
    "core/training/test_transfer.py",
)


def pytest_collection_modifyitems(items):
  tests_dir = pathlib.Path(__file__).resolve().parent
  rank = {tests_dir / name: index for index, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(pathlib.Path(item.path).resolve(),
                                       len(rank)))
