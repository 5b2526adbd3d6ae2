"""docs/serving.md's client, checked against the SavedModel with saved_model_cli.

There is no TF Serving server here: the client's request tensors are fed
to `saved_model_cli run` on the exported SavedModel, and its outputs parsed
back as a `PredictResponse`, so every step but the network is exercised.
"""

import base64
import io
import json
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab import serving_client
from deeplab.core.export import saved_model
from deeplab.core.modeling import deeplab_model
from testing_utils import make_predictions_nontrivial


def _saved_model_cli(version, signature, input_arg, outdir):
  result = subprocess.run(
      [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run",
       "--dir", str(version), "--tag_set", "serve", "--signature_def",
       signature, "--inputs", input_arg, "--outdir", str(outdir)],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_client_request_runs_on_the_saved_model(tiny_model_config, tmp_path):
  pytest.importorskip("tensorflow_serving.apis.predict_pb2")
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (37, 41, 3), np.uint8)
  model = make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(tiny_model_config),
      image[None].astype(np.float32))
  version = saved_model.export_saved_model(model, str(tmp_path / "export"),
                                          with_probabilities=True)

  request = serving_client.make_predict_request(image)
  assert request.model_spec.signature_name == "serving_default"
  np.save(tmp_path / "input.npy", tf.make_ndarray(request.inputs["ImageTensor"]))
  _saved_model_cli(version, "serving_default",
                   f"ImageTensor={tmp_path / 'input.npy'}", tmp_path / "out")
  response = predict_pb2.PredictResponse()
  for key in ("semantic_predictions", "probabilities"):
    response.outputs[key].CopyFrom(tf.make_tensor_proto(
        np.load(tmp_path / "out" / f"{key}.npy")))
  outputs = serving_client.parse_predict_response(response)
  # saved_model_cli runs the graph in a TF1 session, as TF Serving does; it
  # must give what the SavedModel gives in TF2 (parity of the SavedModel
  # with Keras is tested on a trained model in test_export_parity.py).
  reference = tf.saved_model.load(version).signatures["serving_default"](
      ImageTensor=tf.constant(image[None]))
  expected = reference["semantic_predictions"].numpy()[0]
  assert len(np.unique(expected)) > 1
  np.testing.assert_array_equal(outputs["semantic_predictions"], expected)
  np.testing.assert_allclose(outputs["probabilities"],
                             reference["probabilities"].numpy()[0], atol=1e-5)

  # The REST body's base64 image, through the encoded-image signature.
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  body = json.loads(serving_client.make_rest_body(buffer.getvalue()))
  assert body["signature_name"] == "serving_encoded"
  encoded = base64.b64decode(body["instances"][0]["image_bytes"]["b64"])
  np.save(tmp_path / "bytes.npy", np.array([encoded], dtype=object))
  _saved_model_cli(version, "serving_encoded",
                   f"image_bytes={tmp_path / 'bytes.npy'}", tmp_path / "out2")
  served = np.load(tmp_path / "out2" / "semantic_predictions.npy")[0]
  np.testing.assert_array_equal(served, expected)


def test_a_lean_response_gives_labels_only():
  """Exports without --export_probabilities serve labels only."""
  pytest.importorskip("tensorflow_serving.apis.predict_pb2")
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  response = predict_pb2.PredictResponse()
  labels = np.arange(6, dtype=np.int32).reshape(1, 2, 3)
  response.outputs["semantic_predictions"].CopyFrom(
      tf.make_tensor_proto(labels))
  outputs = serving_client.parse_predict_response(response)
  assert list(outputs) == ["semantic_predictions"]
  np.testing.assert_array_equal(outputs["semantic_predictions"], labels[0])
