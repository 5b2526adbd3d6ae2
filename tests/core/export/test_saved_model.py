"""SavedModel export: round trip, versioned layout, no overwrite."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.export import saved_model
from deeplab.core.modeling import deeplab_model
from testing_utils import make_predictions_nontrivial


@pytest.fixture
def model(tiny_model_config):
  images = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3))
  return make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(tiny_model_config), images)


def test_saved_model_round_trip_gives_the_keras_labels(model, tmp_path):
  path = saved_model.export_saved_model(model, str(tmp_path / "export"),
                                        with_probabilities=True)
  assert path == str(tmp_path / "export" / "1")
  assert os.listdir(tmp_path / "export") == ["1"]  # No temporary left.
  serving = tf.saved_model.load(path).signatures["serving_default"]
  # The outputs of exports before the lean graph, for existing clients.
  assert set(serving.structured_outputs) == {"semantic_predictions",
                                             "probabilities"}
  rng = np.random.default_rng(1)
  for height, width in [(37, 45), (64, 50)]:
    image = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    outputs = serving(ImageTensor=tf.constant(image))
    labels = outputs["semantic_predictions"].numpy()
    assert labels.shape == (2, height, width)
    assert outputs["probabilities"].shape == (2, height, width, 3)
    logits = model(image.astype(np.float32), training=False).numpy()
    keras_labels = np.argmax(logits, -1)
    assert len(np.unique(keras_labels)) > 1
    # The loaded graph rounds differently from eager Keras, and this random
    # model has near-ties: strict parity is tested on a trained model
    # (test_export_parity.py); here, where the top two logits are not tied.
    top2 = np.sort(logits, -1)
    clear = top2[..., -1] - top2[..., -2] > 2e-3 * np.abs(logits).max()
    assert clear.mean() > 0.8  # Most pixels are compared.
    assert np.mean(labels[clear] == keras_labels[clear]) > 0.99


def test_versions_increase_and_never_overwrite(model, tmp_path):
  base = str(tmp_path / "export")
  saved_model.export_saved_model(model, base, version=7)
  assert saved_model.next_version(base) == 8
  assert saved_model.resolve_saved_model_dir(base) == os.path.join(base, "7")
  with pytest.raises(FileExistsError, match="7"):
    saved_model.export_saved_model(model, base, version=7)


def test_resolve_missing_saved_model_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="saved_model.pb"):
    saved_model.resolve_saved_model_dir(str(tmp_path))


def test_encoded_signature_equals_the_uint8_signature(model, tmp_path):
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = saved_model.export_saved_model(model, str(tmp_path / "export"),
                                     scales=(0.75, 1.0),
                                     add_flipped_images=True,
                                     with_probabilities=True)
  loaded = tf.saved_model.load(path)
  image = np.random.default_rng(2).integers(0, 256, (29, 35, 3), np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  encoded = loaded.signatures[saved_model.ENCODED_SIGNATURE](
      image_bytes=tf.constant([buffer.getvalue()]))
  raw = loaded.signatures[saved_model.SERVING_SIGNATURE](
      ImageTensor=tf.constant(image[None]))
  np.testing.assert_array_equal(encoded["semantic_predictions"],
                                raw["semantic_predictions"])
  # The export averages scales and flips, as multiscale.predict does.
  expected = saved_model.inference_outputs(model, image[None], (0.75, 1.0), True)
  np.testing.assert_allclose(raw["probabilities"], expected["probabilities"],
                             atol=1e-4)


def test_lean_export_serves_labels_only_with_the_same_inputs(model, tmp_path):
  """The default export: the same input signatures, labels only, and no
  Softmax op in the graph; the labels equal the full export's."""
  path = saved_model.export_saved_model(model, str(tmp_path / "export"))
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures[saved_model.SERVING_SIGNATURE]
  assert list(serve.structured_outputs) == ["semantic_predictions"]
  assert serve.structured_input_signature[1]["ImageTensor"].dtype == tf.uint8
  encoded = loaded.signatures[saved_model.ENCODED_SIGNATURE]
  assert list(encoded.structured_input_signature[1]) == ["image_bytes"]
  ops = {node.op for f in serve.graph.as_graph_def().library.function
         for node in f.node_def}
  assert "ArgMax" in ops and "Softmax" not in ops
  image = np.random.default_rng(4).integers(0, 256, (2, 33, 41, 3), np.uint8)
  full = saved_model.inference_outputs(model, image, with_probabilities=True)
  np.testing.assert_array_equal(serve(ImageTensor=tf.constant(image))[
      "semantic_predictions"], np.argmax(full["probabilities"], -1))


def test_frozen_graph_has_the_official_tensor_names(model, tmp_path):
  from deeplab.core.export import frozen_graph  # pylint: disable=g-import-not-at-top
  path = frozen_graph.write_frozen_graph(model, str(tmp_path / "f.pb"),
                                         with_probabilities=True)
  graph_def = tf.compat.v1.GraphDef()
  graph_def.ParseFromString(open(path, "rb").read())
  nodes = {node.name: node for node in graph_def.node}
  assert nodes["ImageTensor"].op == "Placeholder"
  assert "SemanticPredictions" in nodes and "SemanticProbabilities" in nodes
  assert not any(node.op in ("VarHandleOp", "ReadVariableOp")
                 for node in graph_def.node)
  image = np.random.default_rng(3).integers(0, 256, (1, 31, 27, 3), np.uint8)
  labels, probabilities = frozen_graph.load_frozen_graph(path)(image)
  assert labels.shape == (1, 31, 27) and probabilities.shape == (1, 31, 27, 3)
  np.testing.assert_array_equal(
      labels, np.argmax(model(image.astype(np.float32)), -1))
  lean = frozen_graph.write_frozen_graph(model, str(tmp_path / "lean.pb"))
  lean_labels, none = frozen_graph.load_frozen_graph(lean)(image)
  assert none is None
  np.testing.assert_array_equal(lean_labels, labels)


def test_a_non_graph_file_is_a_clear_error(tmp_path):
  from deeplab.core.export import frozen_graph  # pylint: disable=g-import-not-at-top
  bogus = tmp_path / "model.pb"
  bogus.write_bytes(b"\x00not a graph")
  with pytest.raises(ValueError, match="model.pb"):
    frozen_graph.load_frozen_graph(str(bogus))


def test_exports_follow_prediction_with_upsampled_logits_false(
    tiny_model_config, tmp_path):
  """Every format computes official predict_labels' blocky labels (argmax
  at stride 4, nearest-neighbour upsampling with corners aligned): the
  SavedModel's signature function (same outputs) and TFLite (which has no int32
  nearest resize; the labels are gathered). ONNX traces the same function
  (checked by hand: same labels)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from deeplab.core.export import predictors  # pylint: disable=g-import-not-at-top
  from deeplab.core.export import tflite_export  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import multiscale  # pylint: disable=g-import-not-at-top
  config = dataclasses.replace(tiny_model_config,
                               prediction_with_upsampled_logits=False)
  image = np.random.default_rng(4).integers(0, 256, (1, 33, 33, 3), np.uint8)
  model = make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(config), image)
  raw, _ = multiscale.logits_model(model)
  expected = tf.compat.v1.image.resize_nearest_neighbor(
      tf.argmax(raw(image.astype(np.float32)), 3)[..., None], [33, 33],
      align_corners=True)[0, ..., 0].numpy()
  assert len(np.unique(expected)) > 1
  serve = saved_model.serving_functions(model)[saved_model.SERVING_SIGNATURE]
  outputs = serve(tf.constant(image))
  assert set(outputs) == {"semantic_predictions"}
  np.testing.assert_array_equal(outputs["semantic_predictions"][0], expected)
  tflite = tmp_path / "model.tflite"
  tflite.write_bytes(tflite_export.convert(model, (33, 33)))
  labels, _ = predictors.load_predictor(str(tflite))(image[0])
  np.testing.assert_array_equal(labels, expected)
