"""SavedModel export: round trip, versioned layout, no overwrite."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import deeplab_model
from deeplab.core import exporter
from testing_utils import make_predictions_nontrivial


@pytest.fixture
def model(tiny_model_config):
  images = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3))
  return make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(tiny_model_config), images)


def test_saved_model_round_trip_gives_the_keras_labels(model, tmp_path):
  path = exporter.export_saved_model(model, str(tmp_path / "export"))
  assert path == str(tmp_path / "export" / "1")
  assert os.listdir(tmp_path / "export") == ["1"]  # No temporary left.
  serving = tf.saved_model.load(path).signatures["serving_default"]
  rng = np.random.default_rng(1)
  for height, width in [(37, 45), (64, 50)]:
    image = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    outputs = serving(ImageTensor=tf.constant(image))
    labels = outputs["semantic_predictions"].numpy()
    assert labels.shape == (2, height, width)
    assert outputs["probabilities"].shape == (2, height, width, 3)
    keras_labels = model(image.astype(np.float32), training=False)
    keras_labels = np.argmax(keras_labels, -1)
    assert len(np.unique(keras_labels)) > 1
    np.testing.assert_array_equal(labels, keras_labels)


def test_versions_increase_and_never_overwrite(model, tmp_path):
  base = str(tmp_path / "export")
  exporter.export_saved_model(model, base, version=7)
  assert exporter.next_version(base) == 8
  assert exporter.resolve_saved_model_dir(base) == os.path.join(base, "7")
  with pytest.raises(FileExistsError, match="7"):
    exporter.export_saved_model(model, base, version=7)


def test_resolve_missing_saved_model_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="saved_model.pb"):
    exporter.resolve_saved_model_dir(str(tmp_path))
