"""Checkpoints and SavedModels written before the core/ layout change load.

`tests/fixtures/pre_layout/` was written by the tree at 27e97c0, before
`core/` was split by role: a two-step train_logdir checkpoint (model,
optimizer slots, step) of a small MobileNetV2 DeepLabv3+, the SavedModel
exported from it, and the outputs both gave on a fixed image
(`expected.npz`). Module moves must not change checkpoint object paths or
the SavedModel signature.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import tensorflow as tf

from deeplab.core.export import predictors

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "pre_layout"
EXPECTED = np.load(FIXTURE / "expected.npz")
MODEL_FLAGS = [
    "--model_variant=mobilenet_v2", "--num_classes=5", "--output_stride=16",
    "--decoder_output_stride=4", "--depth_multiplier=0.35",
    "--aspp_convs_filters=16", "--decoder_filters=16",
]


def test_fixture_records_its_model():
  info = json.loads((FIXTURE / "README.json").read_text())
  assert info["model_config"]["decoder_output_stride"] == 4
  assert info["signature_outputs"] == ["probabilities", "semantic_predictions"]


def test_old_saved_model_serves_the_same_outputs():
  loaded = tf.saved_model.load(str(FIXTURE / "export" / "1"))
  serve = loaded.signatures["serving_default"]
  (input_name,) = serve.structured_input_signature[1].keys()
  outputs = serve(**{input_name: tf.constant(EXPECTED["image"])})
  np.testing.assert_array_equal(outputs["semantic_predictions"].numpy(),
                                EXPECTED["sig_semantic_predictions"])
  np.testing.assert_allclose(outputs["probabilities"].numpy(),
                             EXPECTED["sig_probabilities"], atol=1e-6)


def test_old_saved_model_reads_through_our_predictor():
  predictor = predictors.load_predictor(str(FIXTURE / "export"))
  labels, _ = predictor(EXPECTED["image"][0])
  np.testing.assert_array_equal(labels, EXPECTED["sig_semantic_predictions"][0])


def test_old_checkpoint_exports_with_todays_code(tmp_path):
  """Every model weight of the old checkpoint restores into today's model.

  The labels agree with the old export. The heads' BatchNorm epsilon is now
  the official 1e-5 (it was 1e-3), so the probabilities may move slightly.
  """
  export = tmp_path / "export"
  result = subprocess.run(
      [sys.executable, "-m", "deeplab.export_model",
       f"--checkpoint_path={FIXTURE / 'train'}", f"--export_path={export}",
       "--export_version=1"] + MODEL_FLAGS,
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  predictor = predictors.load_predictor(str(export))
  labels, _ = predictor(EXPECTED["image"][0])
  agreement = np.mean(labels == EXPECTED["sig_semantic_predictions"][0])
  assert agreement >= 0.99
