"""Training losses.

Official DeepLab trains with softmax cross-entropy over the pixels that are
not the ignore label (`utils/train_utils.py:add_softmax_cross_entropy_loss_for_each_scale`).
"""

from typing import Optional, Sequence

import tensorflow as tf


def softmax_cross_entropy_loss(logits: tf.Tensor,
                               labels: tf.Tensor,
                               num_classes: int,
                               ignore_label: int,
                               label_weights: Optional[Sequence[float]] = None,
                               top_k_percent_pixels: float = 1.0) -> tf.Tensor:
  """Mean softmax cross-entropy over non-ignored pixels.

  Args:
    logits: Float [B, H, W, C] logits at label resolution.
    labels: Integer [B, H, W] labels, `ignore_label` where not scored.
    num_classes: C.
    ignore_label: Label value that contributes nothing.
    label_weights: Optional per-class weights (length C); a pixel's loss is
      multiplied by its class weight, as official `label_weights` does.
    top_k_percent_pixels: Keep only the hardest fraction of pixels (hard
      pixel mining); 1.0 keeps all.

  Returns:
    A scalar: the weighted loss sum divided by the number of weighted pixels
    (when mining, by the number of non-zero losses among the top k, as
    official DeepLab does). 0 when a batch has no valid pixel.
  """
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  logits = tf.reshape(tf.cast(logits, tf.float32), [-1, num_classes])
  valid = tf.not_equal(labels, ignore_label)
  weights = tf.cast(valid, tf.float32)
  safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
  if label_weights is not None:
    class_weights = tf.constant(label_weights, tf.float32)
    weights *= tf.gather(class_weights, safe_labels)
  pixel_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=safe_labels, logits=logits) * weights

  if top_k_percent_pixels >= 1.0:
    return tf.math.divide_no_nan(tf.reduce_sum(pixel_losses),
                                 tf.reduce_sum(weights))
  num_pixels = tf.size(pixel_losses)
  k = tf.maximum(1, tf.cast(
      tf.cast(num_pixels, tf.float32) * top_k_percent_pixels, tf.int32))
  top_losses, _ = tf.math.top_k(pixel_losses, k=k, sorted=False)
  num_present = tf.reduce_sum(tf.cast(top_losses > 0, tf.float32))
  return tf.math.divide_no_nan(tf.reduce_sum(top_losses), num_present)
