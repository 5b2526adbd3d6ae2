"""Per-class loss weights: from dataset statistics, or adapted while training.

`balanced` and `median_frequency` weights are computed from the training
split's label statistics with the formulas of `datasets/label_stats.py`
(one implementation, shared with the `dataset_stats` tool).

`AdaptiveClassWeights` keeps running per-class pixel frequencies (an
exponential moving average over training batches, all replicas summed) and
gives balanced weights from them, so nothing has to be computed up front.
"""

from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab.datasets import label_stats


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
  stats = label_stats.split_statistics(dataset_dir, split, num_classes,
                                      ignore_label, max_images)
  weights = label_stats.weights_for_scheme(scheme, stats.counts,
                                           stats.image_pixels)
  logging.info("Class weights (%s) from %d labelled pixels of %s/%s: %s",
               scheme, int(stats.counts.sum()), dataset_dir, split,
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
