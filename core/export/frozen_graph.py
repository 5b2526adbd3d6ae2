"""Frozen GraphDef export with official DeepLab's tensor names.

Official `export_model.py` writes `frozen_inference_graph.pb`, a GraphDef
with the weights folded into constants, whose input is `ImageTensor:0`
(uint8 [1, H, W, 3], any size) and whose outputs are
`SemanticPredictions:0` (labels at the input size) and
`SemanticProbabilities:0`. Code written for the official model zoo (its
demo notebook, TF1 `Session.run` clients) loads ours unchanged.

Example:

  write_frozen_graph(model, "/models/frozen_inference_graph.pb")
  run = load_frozen_graph("/models/frozen_inference_graph.pb")
  labels, probabilities = run(image_uint8[None])
"""

from typing import Callable, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from deeplab.core import io_utils
from deeplab.core.export import saved_model

INPUT_TENSOR = "ImageTensor:0"
OUTPUT_TENSOR = "SemanticPredictions:0"
PROBABILITIES_TENSOR = "SemanticProbabilities:0"
FROZEN_GRAPH_NAME = "frozen_inference_graph.pb"


def frozen_function(model: keras.Model, input_signature: tf.TensorSpec,
                    scales: Sequence[float] = (1.0,),
                    add_flipped_images: bool = False,
                    output_keys: Optional[Sequence[str]] = None):
  """The inference function traced for `input_signature`, weights frozen.

  Args:
    model: The Keras DeepLab model.
    input_signature: Spec of the image input.
    scales: Inference scales.
    add_flipped_images: Also average left-right flipped inputs.
    output_keys: Outputs to keep (all when None).

  Returns:
    A concrete function with outputs `semantic_predictions`,
    `probabilities` and `logits`, whose graph holds no variables (nodes
    `SemanticPredictions` and `SemanticProbabilities` carry official names).
  """

  @tf.function(input_signature=[input_signature])
  def infer(images):
    outputs = saved_model.inference_outputs(model, images, scales,
                                         add_flipped_images)
    outputs["semantic_predictions"] = tf.identity(
        outputs["semantic_predictions"], name="SemanticPredictions")
    outputs["probabilities"] = tf.identity(
        outputs["probabilities"], name="SemanticProbabilities")
    return {key: value for key, value in outputs.items()
            if output_keys is None or key in output_keys}

  return convert_to_constants.convert_variables_to_constants_v2(
      infer.get_concrete_function())


def write_frozen_graph(model: keras.Model, path: str,
                       scales: Sequence[float] = (1.0,),
                       add_flipped_images: bool = False) -> str:
  """Writes the frozen GraphDef to `path` (atomically) and returns it."""
  function = frozen_function(
      model, tf.TensorSpec([1, None, None, 3], tf.uint8, name="ImageTensor"),
      scales, add_flipped_images)
  graph_def = function.graph.as_graph_def()
  io_utils.atomic_write_bytes(path, graph_def.SerializeToString())
  return path


def load_frozen_graph(path: str) -> Callable[[np.ndarray],
                                             Tuple[np.ndarray, np.ndarray]]:
  """Loads a frozen graph; returns `run(uint8 [1, H, W, 3])`.

  Returns:
    `run(images) -> (labels [1, H, W], probabilities [1, H, W, C])`, fed
    and fetched by the official tensor names.

  Raises:
    ValueError: naming the file, when it is not a GraphDef with those names.
  """
  graph_def = tf.compat.v1.GraphDef()
  with tf.io.gfile.GFile(path, "rb") as f:
    try:
      graph_def.ParseFromString(f.read())
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"{path!r} is not a GraphDef: {error}") from None

  def _import():
    tf.compat.v1.import_graph_def(graph_def, name="")

  wrapped = tf.compat.v1.wrap_function(_import, [])
  try:
    pruned = wrapped.prune(INPUT_TENSOR, [OUTPUT_TENSOR, PROBABILITIES_TENSOR])
  except (KeyError, ValueError) as error:
    raise ValueError(
        f"Frozen graph {path!r} lacks {INPUT_TENSOR} / {OUTPUT_TENSOR} / "
        f"{PROBABILITIES_TENSOR}: {error}") from None

  def run(images: np.ndarray):
    labels, probabilities = pruned(tf.constant(images, tf.uint8))
    return labels.numpy(), probabilities.numpy()

  return run
