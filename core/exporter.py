"""SavedModel export in TF Serving's versioned layout.

The exported graph holds the whole job: it takes uint8 pixels of any size,
applies the variant's preprocessing (inside the Keras model), and returns
per-pixel labels at the input size plus the class probabilities. This
mirrors official DeepLab's `export_model.py` (`ImageTensor` in,
`SemanticPredictions` out).
"""

import os
import shutil
from typing import Optional

from absl import logging
import keras
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"


class DeepLabServingModule(tf.Module):
  """Wraps a Keras DeepLab model with a uint8-in, labels-out signature.

  Args:
    model: Keras model mapping float32 [B, H, W, 3] pixels (0..255) to
      logits [B, H, W, C] at the input resolution.
  """

  def __init__(self, model: keras.Model):
    super().__init__(name="deeplab")
    self.model = model

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.uint8, name="ImageTensor")])
  def serve(self, images):
    """Segments a uint8 batch [B, H, W, 3] of any size.

    Returns:
      `semantic_predictions`: int32 [B, H, W] labels at the input size, and
      `probabilities`: float32 [B, H, W, C] softmax probabilities.
    """
    logits = self.model(tf.cast(images, tf.float32), training=False)
    logits = tf.cast(logits, tf.float32)
    # The model already returns logits at the input size; resizing again
    # keeps the contract if a model ever returns them at a lower resolution.
    logits = tf.image.resize(logits, tf.shape(images)[1:3], method="bilinear")
    return {
        "semantic_predictions": tf.argmax(logits, -1, output_type=tf.int32),
        "probabilities": tf.nn.softmax(logits, axis=-1),
    }


def next_version(export_path: str) -> int:
  """One more than the largest integer version already in `export_path`."""
  if not tf.io.gfile.isdir(export_path):
    return 1
  versions = [int(n) for n in tf.io.gfile.listdir(export_path)
              if n.strip("/").isdigit()]
  return max(versions, default=0) + 1


def export_saved_model(model: keras.Model, export_path: str,
                       version: Optional[int] = None) -> str:
  """Writes `export_path/<version>/`, atomically.

  The SavedModel is written to a temporary folder beside the target and
  renamed when complete, so TF Serving, which watches `export_path`, never
  sees a half-written version.

  Args:
    model: The Keras DeepLab model.
    export_path: The model's base folder (TF Serving's `model_base_path`).
    version: Integer version; the next free one when None.

  Returns:
    The path of the written version.

  Raises:
    FileExistsError: naming the folder, when that version already exists.
  """
  version = next_version(export_path) if version is None else int(version)
  target = os.path.join(export_path, str(version))
  if tf.io.gfile.exists(target):
    raise FileExistsError(
        f"Export version {target!r} already exists; pass another "
        "--export_version or remove it.")
  tf.io.gfile.makedirs(export_path)
  temporary = os.path.join(export_path, f".tmp-{version}-{os.getpid()}")
  if tf.io.gfile.exists(temporary):
    shutil.rmtree(temporary)
  module = DeepLabServingModule(model)
  try:
    tf.saved_model.save(module, temporary,
                        signatures={SERVING_SIGNATURE: module.serve})
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
