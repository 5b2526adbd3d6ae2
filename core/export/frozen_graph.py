"""Frozen GraphDef export with official DeepLab's tensor names.

Official `export_model.py` writes `frozen_inference_graph.pb`, a GraphDef
with the weights folded into constants, whose input is `ImageTensor:0`
(uint8 [1, H, W, 3], any size) and whose outputs are
`SemanticPredictions:0` (labels at the input size) and, when exported with
probabilities (export_model.py --export_probabilities),
`SemanticProbabilities:0`. Code written for the official model zoo (its
demo notebook, TF1 `Session.run` clients) loads ours unchanged; it fetches
`SemanticPredictions:0` only.

Example:

  write_frozen_graph(model, "/models/frozen_inference_graph.pb")
  run = load_frozen_graph("/models/frozen_inference_graph.pb")
  labels, probabilities = run(image_uint8[None])  # probabilities: or None
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
    output_keys: Outputs to keep (all when None); the softmax is computed
      only when `probabilities` or `logits` is among them.

  Returns:
    A concrete function with outputs `semantic_predictions` and (when
    kept) `probabilities` and `logits`, whose graph holds no variables
    (nodes `SemanticPredictions` and `SemanticProbabilities` carry official
    names).
  """

  with_probabilities = output_keys is None or bool(
      {saved_model.PROBABILITIES, saved_model.LOGITS} & set(output_keys))

  @tf.function(input_signature=[input_signature])
  def infer(images):
    outputs = saved_model.inference_outputs(model, images, scales,
                                            add_flipped_images,
                                            with_probabilities)
    outputs[saved_model.LABELS] = tf.identity(
        outputs[saved_model.LABELS], name="SemanticPredictions")
    if with_probabilities:
      outputs[saved_model.PROBABILITIES] = tf.identity(
          outputs[saved_model.PROBABILITIES], name="SemanticProbabilities")
    return {key: value for key, value in outputs.items()
            if output_keys is None or key in output_keys}

  return convert_to_constants.convert_variables_to_constants_v2(
      infer.get_concrete_function())


def write_frozen_graph(model: keras.Model, path: str,
                       scales: Sequence[float] = (1.0,),
                       add_flipped_images: bool = False,
                       with_probabilities: bool = False) -> str:
  """Writes the frozen GraphDef to `path` (atomically) and returns it.

  `with_probabilities` adds `SemanticProbabilities:0`; the default graph
  ends at `SemanticPredictions:0`, with no full-resolution softmax.
  """
  function = frozen_function(
      model, tf.TensorSpec([1, None, None, 3], tf.uint8, name="ImageTensor"),
      scales, add_flipped_images,
      output_keys=saved_model.output_keys(with_probabilities))
  graph_def = function.graph.as_graph_def()
  io_utils.atomic_write_bytes(path, graph_def.SerializeToString())
  return path


def load_frozen_graph(path: str) -> Callable[
    [np.ndarray], Tuple[np.ndarray, Optional[np.ndarray]]]:
  """Loads a frozen graph; returns `run(uint8 [1, H, W, 3])`.

  Returns:
    `run(images) -> (labels [1, H, W], probabilities [1, H, W, C] or None)`,
    fed and fetched by the official tensor names; probabilities are None
    for a graph exported without them.

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
  names = {node.name for node in graph_def.node}
  fetches = [OUTPUT_TENSOR]
  if PROBABILITIES_TENSOR.split(":")[0] in names:
    fetches.append(PROBABILITIES_TENSOR)
  try:
    pruned = wrapped.prune(INPUT_TENSOR, fetches)
  except (KeyError, ValueError) as error:
    raise ValueError(
        f"Frozen graph {path!r} lacks {INPUT_TENSOR} / {OUTPUT_TENSOR}: "
        f"{error}") from None

  def run(images: np.ndarray):
    outputs = pruned(tf.constant(images, tf.uint8))
    labels = outputs[0].numpy()
    return labels, outputs[1].numpy() if len(outputs) > 1 else None

  run.has_probabilities = len(fetches) > 1
  return run
