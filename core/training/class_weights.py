"""Per-class loss weights: from dataset statistics, or adapted while training.

Two fixed schemes are computed from the training split's label statistics:

* `balanced`: `w_c = N / (K * n_c)` (scikit-learn's "balanced"), where `n_c`
  is the number of pixels of class c, N their total and K the number of
  classes present;
* `median_frequency`: `w_c = median(f) / f_c` with `f_c = n_c / P_c`, where
  `P_c` is the number of labelled pixels of the images in which c appears
  (Eigen & Fergus, ICCV 2015; used by SegNet).

Classes that never appear get weight 0 (they have no pixel to weigh).

`AdaptiveClassWeights` keeps running per-class pixel frequencies (an
exponential moving average over training batches, all replicas summed) and
gives balanced weights from them, so nothing has to be computed up front.
"""

from typing import Iterable, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

SCHEMES = ("none", "balanced", "median_frequency", "adaptive")


def class_pixel_statistics(labels: Iterable[np.ndarray], num_classes: int,
                           ignore_label: int) -> Tuple[np.ndarray, np.ndarray]:
  """Counts pixels per class over label maps.

  Args:
    labels: Integer label maps (any shape each).
    num_classes: C; labels >= C other than `ignore_label` are an error.
    ignore_label: Not counted.

  Returns:
    (`counts`, `image_pixels`), both int64 [C]: the pixels of each class,
    and the labelled pixels of the images in which each class appears.

  Raises:
    ValueError: on a label value that is neither a class nor ignored.
  """
  counts = np.zeros(num_classes, np.int64)
  image_pixels = np.zeros(num_classes, np.int64)
  for label in labels:
    label = np.asarray(label).reshape(-1)
    label = label[label != ignore_label]
    if label.size and (label.min() < 0 or label.max() >= num_classes):
      raise ValueError(
          f"Label value {int(label.max())} is outside [0, {num_classes}) and "
          f"is not the ignore label {ignore_label}.")
    image_counts = np.bincount(label, minlength=num_classes)
    counts += image_counts
    image_pixels[image_counts > 0] += label.size
  return counts, image_pixels


def balanced_weights(counts: np.ndarray) -> np.ndarray:
  """`N / (K * n_c)` for present classes, 0 for absent ones."""
  counts = np.asarray(counts, np.float64)
  present = counts > 0
  weights = np.zeros_like(counts)
  weights[present] = counts.sum() / (present.sum() * counts[present])
  return weights


def median_frequency_weights(counts: np.ndarray,
                             image_pixels: np.ndarray) -> np.ndarray:
  """`median(f) / f_c` with `f_c = n_c / P_c`, 0 for absent classes."""
  counts = np.asarray(counts, np.float64)
  present = counts > 0
  frequencies = np.zeros_like(counts)
  frequencies[present] = counts[present] / np.asarray(image_pixels,
                                                      np.float64)[present]
  weights = np.zeros_like(counts)
  weights[present] = np.median(frequencies[present]) / frequencies[present]
  return weights


def weights_for_scheme(scheme: str, counts: np.ndarray,
                       image_pixels: np.ndarray) -> np.ndarray:
  """The weights of `balanced` or `median_frequency` from statistics."""
  if scheme == "balanced":
    return balanced_weights(counts)
  if scheme == "median_frequency":
    return median_frequency_weights(counts, image_pixels)
  raise ValueError(f"--class_weighting {scheme!r} is not computed from "
                   "statistics; use balanced or median_frequency.")


def class_weights_from_tfrecords(dataset_dir: str, split: str,
                                 num_classes: int, ignore_label: int,
                                 scheme: str,
                                 max_images: Optional[int] = None
                                 ) -> np.ndarray:
  """Computes a scheme's weights from a split's TFRecord labels.

  Args:
    dataset_dir: Folder of the `{split}-*.tfrecord` shards.
    split: The training split.
    num_classes: C.
    ignore_label: Not counted.
    scheme: `balanced` or `median_frequency`.
    max_images: Read at most this many images (None: all).

  Returns:
    float32 [C] weights.
  """
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  files = tfrecord_io.list_shards(dataset_dir, split)
  dataset = tf.data.TFRecordDataset(files).map(
      lambda s: tfrecord_io.parse_example(s)["label"],
      num_parallel_calls=tf.data.AUTOTUNE)
  if max_images:
    dataset = dataset.take(max_images)
  counts, image_pixels = class_pixel_statistics(
      (label.numpy() for label in dataset), num_classes, ignore_label)
  weights = weights_for_scheme(scheme, counts, image_pixels)
  logging.info("Class weights (%s) from %d labelled pixels of %s/%s: %s",
               scheme, int(counts.sum()), dataset_dir, split,
               np.array2string(weights, precision=3))
  return weights.astype(np.float32)


class AdaptiveClassWeights(tf.Module):
  """Balanced class weights from running per-class pixel frequencies.

  Each call to `update(labels)` folds the batch's class frequencies (summed
  over all replicas, so every replica holds the same value) into an
  exponential moving average `f`, and returns `min(max_weight, 1 / (C f))`.
  The frequencies are a variable: checkpoint this module with the model to
  resume exactly.

  Args:
    num_classes: C.
    ignore_label: Not counted.
    momentum: EMA decay of the frequencies.
    max_weight: Upper bound of any weight (rare classes would explode).
  """

  def __init__(self, num_classes: int, ignore_label: int,
               momentum: float = 0.99, max_weight: float = 10.0):
    super().__init__(name="adaptive_class_weights")
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.momentum = momentum
    self.max_weight = max_weight
    self.frequencies = tf.Variable(
        tf.fill([num_classes], 1.0 / num_classes), trainable=False,
        name="class_frequencies",
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def weights(self) -> tf.Tensor:
    """The current weights, float32 [C]."""
    return tf.minimum(self.max_weight, 1.0 / (
        self.num_classes * tf.maximum(self.frequencies, 1e-12)))

  def update(self, labels: tf.Tensor) -> tf.Tensor:
    """Folds a batch into the frequencies; returns the new weights."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    labels = tf.boolean_mask(labels, tf.not_equal(labels, self.ignore_label))
    counts = tf.math.bincount(labels, minlength=self.num_classes,
                              maxlength=self.num_classes, dtype=tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      counts = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
    total = tf.reduce_sum(counts)
    batch_frequencies = tf.math.divide_no_nan(counts, total)
    updated = tf.where(
        total > 0,
        self.momentum * self.frequencies + (1.0 - self.momentum) *
        batch_frequencies, self.frequencies)
    self.frequencies.assign(updated)
    return self.weights()
