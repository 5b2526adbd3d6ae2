"""Batched evaluation of a Keras model on a `tf.data` input, under a strategy.

What official `eval.py` does for a checkpoint: one pass over the eval split,
multi-scale/flip inference (`multiscale.predict_labels`), one confusion matrix
summed on device across replicas, every figure derived from it. Used by
`evaluate.py` (on a model restored with `core/checkpoints.restore_model`)
and by the training Runner's online evaluation, so both score alike.

Example:

  evaluator = ModelEvaluator(model, num_classes=21, ignore_label=255)
  results = evaluator.evaluate(input_fn, eval_scales=(0.75, 1.0, 1.25))
"""

import time
from typing import Callable, Dict, Optional, Sequence

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab.core.evaluation import metrics as metrics_lib
from deeplab.core.modeling import multiscale
from deeplab.datasets import colormaps


def write_image_summaries(model: keras.Model, images: tf.Tensor,
                          labels: tf.Tensor, step: int,
                          colormap: np.ndarray, count: int = 3):
  """Input, coloured ground truth and coloured prediction of a few images,
  to the default summary writer."""
  images, labels = images[:count], labels[:count]
  predictions, _, _ = multiscale.predict_labels(model, images,
                                                with_probabilities=False)
  tf.summary.image("image", tf.cast(images, tf.uint8), step=step,
                   max_outputs=count)
  tf.summary.image("label", colormaps.colorize_labels(labels, colormap),
                   step=step, max_outputs=count)
  tf.summary.image("prediction",
                   colormaps.colorize_labels(predictions, colormap),
                   step=step, max_outputs=count)


class ModelEvaluator:
  """Scores a Keras model, batch by batch, under a `tf.distribute` strategy.

  The traced step is kept between calls (a Runner evaluates every few
  thousand steps), and retraced only when the scales change.

  Args:
    model: The Keras model (with or without an auxiliary head: its main
      logits are scored).
    num_classes: Number of classes.
    ignore_label: Label value that is not scored.
    strategy: The strategy the model was built under (the default one when
      None).
    colormap: Colours of the image summaries.
  """

  def __init__(self, model: keras.Model, num_classes: int, ignore_label: int,
               strategy: Optional[tf.distribute.Strategy] = None,
               colormap: Optional[np.ndarray] = None):
    self.model = model
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.strategy = strategy or tf.distribute.get_strategy()
    self.colormap = (colormap if colormap is not None
                     else colormaps.create_pascal_label_colormap())
    self._step = None
    self._inference = None
    self.first_batch = None  # Of the last evaluation, for image summaries.

  def _make_step(self, scales, add_flipped_images):
    model, strategy = self.model, self.strategy

    def step_fn(features, labels):
      predictions, _, _ = multiscale.predict_labels(
          model, features["image"], scales, add_flipped_images,
          with_probabilities=False)
      return (metrics_lib.confusion_matrix_update(
          labels, predictions, self.num_classes, self.ignore_label),
              tf.shape(labels, out_type=tf.int64)[0])

    @tf.function
    def eval_step(features, labels):
      confusion, count = strategy.run(step_fn, args=(features, labels))
      total = tf.distribute.ReduceOp.SUM
      return (strategy.reduce(total, confusion, axis=None),
              strategy.reduce(total, count, axis=None))

    return eval_step

  def evaluate(self, input_fn: Callable,
               eval_scales: Sequence[float] = (1.0,),
               add_flipped_images: bool = False) -> Dict[str, object]:
    """One pass over `input_fn`'s data.

    Args:
      input_fn: `input_fn(input_context) -> tf.data.Dataset` of
        `(features, labels)`, one pass.
      eval_scales: Input scales whose softmax is averaged (official
        `eval_scales`).
      add_flipped_images: Also average left-right flipped inputs.

    Returns:
      `metrics_from_confusion_matrix`, plus `num_images` and
      `confusion_matrix`. The first batch is kept as `first_batch`.

    Raises:
      ValueError: when the data yields no images.
    """
    inference = (multiscale.validate_scales(eval_scales),
                 bool(add_flipped_images))
    if self._step is None or inference != self._inference:
      self._step, self._inference = self._make_step(*inference), inference
    confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
    num_images, first_batch, start = 0, None, time.time()
    dataset = self.strategy.distribute_datasets_from_function(input_fn)
    for features, labels in dataset:
      batch_confusion, count = self._step(features, labels)
      confusion += batch_confusion.numpy()
      num_images += int(count)
      first_batch = first_batch or (features, labels)
    if num_images == 0:
      raise ValueError("The eval split yielded no images.")
    results = metrics_lib.metrics_from_confusion_matrix(confusion)
    results.update(num_images=num_images, confusion_matrix=confusion.tolist())
    self.first_batch = first_batch
    logging.info("Evaluated %d images in %.1fs: mIoU %.4f, pixel accuracy "
                 "%.4f", num_images, time.time() - start, results["miou"],
                 results["pixel_accuracy"])
    return results

  def write_summaries(self, eval_dir: str, results: Dict[str, object],
                      step: int, num_images: int = 3):
    """mIoU, pixel accuracy, per-class IoU and a few images to `eval_dir`."""
    writer = tf.summary.create_file_writer(eval_dir)
    with writer.as_default():
      tf.summary.scalar("miou", results["miou"], step=step)
      tf.summary.scalar("pixel_accuracy", results["pixel_accuracy"], step=step)
      for class_id, iou in enumerate(results["per_class_iou"]):
        if iou is not None:
          tf.summary.scalar(f"class_iou/{class_id}", iou, step=step)
      features, labels = self.first_batch
      local = self.strategy.experimental_local_results
      write_image_summaries(self.model, local(features["image"])[0],
                            local(labels)[0], step, self.colormap, num_images)
    writer.flush()
