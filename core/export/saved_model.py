"""SavedModel export in TF Serving's versioned layout.

The exported graph holds the whole job: it takes uint8 pixels of any size,
applies the variant's preprocessing (inside the Keras model), and returns
per-pixel labels at the input size, and the class probabilities only when
asked for. This mirrors official DeepLab's `export_model.py` (`ImageTensor`
in, `SemanticPredictions` out, `SemanticProbabilities` separately).
"""

import os
import re
import shutil
from typing import Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import keras
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import multiscale

SERVING_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "serving_encoded"


LABELS = "semantic_predictions"
PROBABILITIES = "probabilities"
LOGITS = "logits"


def inference_outputs(model: keras.Model, images: tf.Tensor,
                      scales: Sequence[float] = (1.0,),
                      add_flipped_images: bool = False,
                      with_probabilities: bool = True
                      ) -> Dict[str, tf.Tensor]:
  """The exported computation: raw pixels in, labels (and probabilities) out.

  Every export format (SavedModel, frozen graph, TFLite, ONNX) traces this
  one function, so they all compute the same thing. A single pass takes
  the labels as the argmax of the upsampled logits, as official
  `predict_labels` does: softmax is monotonic, so a lean graph
  (`with_probabilities=False`) never computes it at full resolution.
  Multi-scale and flipped inference average probabilities (official
  `predict_labels_multi_scale`), so their labels need the softmax anyway.
  The model's `prediction_with_upsampled_logits`, `image_pyramid` and
  `merge_method` apply as in `multiscale.predict_labels`.

  Args:
    model: Keras model mapping float32 pixels (0..255) to logits.
    images: uint8 or float [B, H, W, 3] pixels.
    scales: Inference scales (official `inference_scales`).
    add_flipped_images: Also average left-right flipped inputs.
    with_probabilities: Also return `probabilities` and `logits`.

  Returns:
    `semantic_predictions` int32 [B, H, W]; with `with_probabilities`,
    `probabilities` and `logits` float32 [B, H, W, C] (see
    `multiscale.predict` for multi-scale logits).
  """
  labels, probabilities, logits = multiscale.predict_labels(
      model, images, scales, add_flipped_images, with_probabilities)
  outputs = {LABELS: labels}
  if with_probabilities:
    outputs.update({PROBABILITIES: probabilities, LOGITS: logits})
  return outputs


def output_keys(with_probabilities: bool) -> Tuple[str, ...]:
  """The outputs of a lean (`semantic_predictions`) or full export."""
  return (LABELS, PROBABILITIES) if with_probabilities else (LABELS,)


IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name="ImageTensor")
ENCODED_SPEC = tf.TensorSpec([None], tf.string, name="image_bytes")


def serving_functions(model: keras.Model, scales: Sequence[float] = (1.0,),
                      add_flipped_images: bool = False,
                      with_probabilities: bool = False
                      ) -> Dict[str, Callable]:
  """The SavedModel's two signatures, as Python functions.

  `serving_default` takes a uint8 batch `ImageTensor` [B, H, W, 3] of any
  size; `serving_encoded` takes `image_bytes`, a string batch of encoded
  JPEG/PNG/BMP/GIF images of one size (TF Serving's REST API base64-decodes
  inputs whose name ends in `_bytes`). Both return `semantic_predictions`
  (int32 [B, H, W] labels at the input size) and, with
  `with_probabilities` (export_model.py --export_probabilities),
  `probabilities` (float32 [B, H, W, C]): the lean default skips the
  full-resolution softmax and a C-times larger response.

  Args:
    model: Keras model mapping float32 [B, H, W, 3] pixels (0..255) to
      logits [B, H, W, C].
    scales: Inference scales baked into the export.
    add_flipped_images: Also average left-right flipped inputs.
    with_probabilities: Also serve `probabilities`.
  """
  scales = multiscale.validate_scales(scales, "inference_scales")
  keys = output_keys(with_probabilities)

  def outputs(images):
    results = inference_outputs(model, images, scales, add_flipped_images,
                                with_probabilities)
    return {key: results[key] for key in keys}

  def serve_encoded(image_bytes):
    images = tf.map_fn(
        lambda data: tf.io.decode_image(data, channels=3,
                                        expand_animations=False),
        image_bytes,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    return outputs(images)

  return {SERVING_SIGNATURE: outputs, ENCODED_SIGNATURE: serve_encoded}


def next_version(export_path: str) -> int:
  """One more than the largest integer version already in `export_path`."""
  if not tf.io.gfile.isdir(export_path):
    return 1
  versions = [int(n) for n in tf.io.gfile.listdir(export_path)
              if n.strip("/").isdigit()]
  return max(versions, default=0) + 1


# Before: `.tmp-<version>-<pid>`.
_LEGACY_TEMP_RE = re.compile(r"^\.tmp-\d+-(?P<pid>\d+)$")


def export_saved_model(model: keras.Model, export_path: str,
                       version: Optional[int] = None,
                       scales: Sequence[float] = (1.0,),
                       add_flipped_images: bool = False,
                       extra_writers: Optional[
                           Dict[str, Callable[[str], None]]] = None,
                       with_probabilities: bool = False) -> str:
  """Writes `export_path/<version>/`, atomically.

  The SavedModel (and any extra artifacts) is written to a temporary folder
  beside the target and renamed when complete, so TF Serving, which watches
  `export_path`, never sees a half-written version.

  Args:
    model: The Keras DeepLab model; an auxiliary head, if any, is left out
      of the export.
    export_path: The model's base folder (TF Serving's `model_base_path`).
    version: Integer version; the next free one when None.
    scales: Inference scales baked into the graph.
    add_flipped_images: Also average left-right flipped inputs.
    extra_writers: file name -> `write(path)`, for other formats written
      into the same version folder (frozen graph, TFLite, ONNX).
    with_probabilities: Also serve `probabilities` (see
      `serving_functions`); the default serves labels only.

  Returns:
    The path of the written version.

  Raises:
    FileExistsError: naming the folder, when that version already exists.
  """
  # A model trained with an auxiliary head exports its main output only.
  model = deeplab_model.main_output_model(model)
  version = next_version(export_path) if version is None else int(version)
  target = os.path.join(export_path, str(version))
  if tf.io.gfile.exists(target):
    raise FileExistsError(
        f"Export version {target!r} already exists; pass another "
        "--export_version or remove it.")
  tf.io.gfile.makedirs(export_path)
  # Partial versions of exports killed mid-way (SIGKILL): theirs only.
  for pattern in (io_utils.TEMP_PATTERN, _LEGACY_TEMP_RE):
    io_utils.remove_stale_temporaries(export_path, pattern,
                                      "partial SavedModel")
  temporary = os.path.join(export_path, f".tmp-{os.getpid()}-v{version}")
  if tf.io.gfile.exists(temporary):
    shutil.rmtree(temporary)
  # The module tracks the model's backing tf.Variables, which the traced
  # signatures capture, and not the Keras model: a tf.Module holding the
  # model loads in TF2 but fails in TF1 sessions (TF Serving,
  # saved_model_cli: "Could not find variable ..."), since its checkpoint
  # holds the KerasVariable wrappers, not the captured variables; Keras'
  # ExportArchive works but stores every variable twice.
  module = tf.Module()
  module.variables_to_serve = [v.value for v in model.variables]
  functions = serving_functions(model, scales, add_flipped_images,
                                with_probabilities)
  module.serve = tf.function(functions[SERVING_SIGNATURE],
                             input_signature=[IMAGE_SPEC])
  module.serve_encoded = tf.function(functions[ENCODED_SIGNATURE],
                                     input_signature=[ENCODED_SPEC])
  try:
    tf.saved_model.save(module, temporary,
                        signatures={SERVING_SIGNATURE: module.serve,
                                    ENCODED_SIGNATURE: module.serve_encoded})
    for name, write in (extra_writers or {}).items():
      write(os.path.join(temporary, name))
    os.replace(temporary, target)
  except BaseException:
    shutil.rmtree(temporary, ignore_errors=True)
    raise
  logging.info("Exported SavedModel to %s", target)
  return target


def resolve_saved_model_dir(path: str) -> str:
  """Accepts a version folder or a base folder (picks the newest version)."""
  if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    return path
  if tf.io.gfile.isdir(path):
    versions = [int(n.strip("/")) for n in tf.io.gfile.listdir(path)
                if n.strip("/").isdigit()]
    if versions:
      return os.path.join(path, str(max(versions)))
  raise FileNotFoundError(
      f"No SavedModel at {path!r}: expected saved_model.pb there or in a "
      "numbered version folder below it (run export_model.py first).")
