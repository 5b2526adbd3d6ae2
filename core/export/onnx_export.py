"""ONNX export through tf2onnx (extra `export`).

The exported graph is the shared inference function: input `ImageTensor`
uint8 [B, H, W, 3] of any size; outputs `semantic_predictions` int32
[B, H, W], `probabilities` and `logits` float32 [B, H, W, C].

tf2onnx 1.17 at opset 17 with onnxruntime matches TF to about 1e-4 of the
largest logit (TRAPS.md): compare argmaxes, or logits relative to their
range.

Example:

  write_onnx(model, "/models/deeplab.onnx")
"""

from typing import Sequence

import keras
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.export import saved_model

OPSET = 17
INPUT_NAME = "ImageTensor"


def _require_tf2onnx():
  try:
    import tf2onnx  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError("ONNX export needs tf2onnx: pip install "
                     "'deeplab[export]'.") from None
  return tf2onnx


def write_onnx(model: keras.Model, path: str,
               scales: Sequence[float] = (1.0,),
               add_flipped_images: bool = False,
               opset: int = OPSET) -> str:
  """Converts the inference function to ONNX and writes it (atomically).

  Raises:
    ValueError: when tf2onnx is not installed.
  """
  tf2onnx = _require_tf2onnx()

  @tf.function
  def infer(images):
    return saved_model.inference_outputs(model, images, scales,
                                      add_flipped_images)

  proto, _ = tf2onnx.convert.from_function(
      infer,
      input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8,
                                     name=INPUT_NAME)],
      opset=opset)
  io_utils.atomic_write_bytes(path, proto.SerializeToString())
  return path
