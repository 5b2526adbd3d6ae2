"""A TF Serving client for exported DeepLab models (gRPC and REST).

Needs the `serving` extra (tensorflow-serving-api) for gRPC. See
docs/serving.md for how to start the server.

Example:

  python -m deeplab.serving_client --image=cat.jpg --output=cat_labels.png \\
    --server=localhost:8500 --model_name=deeplab
"""

import base64
import json
from typing import Dict

from absl import flags
import numpy as np
from PIL import Image

FLAGS = flags.FLAGS

DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "serving_encoded"


def make_predict_request(image: np.ndarray, model_name: str = "deeplab",
                         signature_name: str = DEFAULT_SIGNATURE):
  """A gRPC `PredictRequest` for one uint8 RGB image [H, W, 3]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  request.inputs["ImageTensor"].CopyFrom(
      tf.make_tensor_proto(np.asarray(image, np.uint8)[None]))
  return request


def parse_predict_response(response) -> Dict[str, np.ndarray]:
  """Labels [H, W] of a `PredictResponse`, and probabilities [H, W, C] when
  the model serves them (exported with --export_probabilities)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {key: tf.make_ndarray(response.outputs[key])[0]
          for key in ("semantic_predictions", "probabilities")
          if key in response.outputs}


def predict_grpc(image: np.ndarray, server: str = "localhost:8500",
                 model_name: str = "deeplab",
                 timeout: float = 60.0) -> Dict[str, np.ndarray]:
  """Segments an image on a TF Serving server, over gRPC."""
  import grpc  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  channel = grpc.insecure_channel(
      server, options=[("grpc.max_receive_message_length", 1 << 30)])
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  response = stub.Predict(make_predict_request(image, model_name),
                          timeout=timeout)
  return parse_predict_response(response)


def make_rest_body(encoded_image: bytes) -> str:
  """The JSON body of a REST `:predict` call on the encoded-image signature.

  TF Serving base64-decodes `{"b64": ...}` values of inputs named `*_bytes`.
  """
  return json.dumps({
      "signature_name": ENCODED_SIGNATURE,
      "instances": [{"image_bytes": {
          "b64": base64.b64encode(encoded_image).decode("ascii")}}],
  })


def main(argv):
  del argv
  image = np.array(Image.open(FLAGS.image).convert("RGB"))
  outputs = predict_grpc(image, FLAGS.server, FLAGS.model_name)
  Image.fromarray(outputs["semantic_predictions"].astype(np.uint8)).save(
      FLAGS.output)
  print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("image", None, "Image to segment.")
  flags.DEFINE_string("output", "labels.png", "Label PNG to write.")
  flags.DEFINE_string("server", "localhost:8500", "TF Serving gRPC address.")
  flags.DEFINE_string("model_name", "deeplab", "TF Serving model name.")
  flags.mark_flag_as_required("image")
  app.run(main)
