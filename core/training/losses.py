"""Training losses.

Official DeepLab trains with softmax cross-entropy over the pixels that are
not the ignore label (`utils/train_utils.py:add_softmax_cross_entropy_loss_for_each_scale`),
with optional per-class `label_weights` and hard-pixel mining
(`top_k_percent_pixels`, ramped in over `hard_example_mining_step`). The
stronger community recipes add label smoothing (Model Garden's
`Losses.label_smoothing`) and focal loss (Lin et al., 2017); both are here
as options of the same function, so every combination shares one ignore-label
and normalisation rule.
"""

from typing import Optional, Sequence, Union

import tensorflow as tf

from deeplab.core import config as config_lib


def top_k_fraction(top_k_percent_pixels: float,
                   hard_example_mining_step: int,
                   global_step: Optional[Union[int, tf.Tensor]]) -> tf.Tensor:
  """The fraction of pixels kept at `global_step` (official ramp).

  `ratio = min(1, step / hard_example_mining_step)`, and the fraction is
  `ratio * top_k + (1 - ratio) * 1.0`: all pixels at step 0, `top_k` from
  `hard_example_mining_step` on.
  """
  top_k = tf.constant(top_k_percent_pixels, tf.float32)
  if hard_example_mining_step == 0 or global_step is None:
    return top_k
  ratio = tf.minimum(
      1.0, tf.cast(global_step, tf.float32) / float(hard_example_mining_step))
  return ratio * top_k + (1.0 - ratio)


def pixel_losses(logits: tf.Tensor,
                 labels: tf.Tensor,
                 num_classes: int,
                 label_smoothing: float = 0.0,
                 focal_gamma: float = 0.0,
                 focal_alpha: float = 1.0) -> tf.Tensor:
  """Per-pixel (smoothed, optionally focal) cross-entropy, unweighted.

  Args:
    logits: Float [N, C].
    labels: Integer [N] in [0, C).
    num_classes: C.
    label_smoothing: Target smoothing `s`: `(1 - s) * onehot + s / C`.
    focal_gamma: Focal exponent: the loss of a pixel whose true-class
      probability is `p` is multiplied by `alpha * (1 - p) ** gamma`.
    focal_alpha: Focal balance factor.

  Returns:
    Float [N] losses.
  """
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
  if label_smoothing:
    targets = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
  else:
    targets = onehot
  losses = -tf.reduce_sum(targets * log_probs, axis=-1)
  if focal_gamma or focal_alpha != 1.0:
    true_prob = tf.exp(tf.reduce_sum(onehot * log_probs, axis=-1))
    losses *= focal_alpha * tf.pow(1.0 - true_prob, focal_gamma)
  return losses


def softmax_cross_entropy_loss(logits: tf.Tensor,
                               labels: tf.Tensor,
                               num_classes: int,
                               ignore_label: int,
                               label_weights: Optional[Union[Sequence[float],
                                                             tf.Tensor]] = None,
                               top_k_percent_pixels: float = 1.0,
                               hard_example_mining_step: int = 0,
                               global_step=None,
                               label_smoothing: float = 0.0,
                               focal_gamma: float = 0.0,
                               focal_alpha: float = 1.0) -> tf.Tensor:
  """Mean softmax cross-entropy over non-ignored pixels.

  Args:
    logits: Float [B, H, W, C] logits at label resolution.
    labels: Integer [B, H, W] labels, `ignore_label` where not scored.
    num_classes: C.
    ignore_label: Label value that contributes nothing.
    label_weights: Optional per-class weights (length C, a list or a
      tensor); a pixel's loss is multiplied by its class weight, as official
      `label_weights` does.
    top_k_percent_pixels: Keep only the hardest fraction of pixels (hard
      pixel mining); 1.0 keeps all.
    hard_example_mining_step: Ramp for `top_k_percent_pixels` (see
      `top_k_fraction`); needs `global_step`.
    global_step: The current step, for the mining ramp.
    label_smoothing: See `pixel_losses`.
    focal_gamma: See `pixel_losses`.
    focal_alpha: See `pixel_losses`.

  Returns:
    A scalar: the weighted loss sum divided by the sum of the pixel weights
    (when mining, by the number of non-zero losses among the top k, as
    official DeepLab does). 0 when a batch has no valid pixel.
  """
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  logits = tf.reshape(tf.cast(logits, tf.float32), [-1, num_classes])
  valid = tf.not_equal(labels, ignore_label)
  weights = tf.cast(valid, tf.float32)
  safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
  if label_weights is not None:
    class_weights = tf.cast(tf.convert_to_tensor(label_weights), tf.float32)
    weights *= tf.gather(class_weights, safe_labels)
  losses = pixel_losses(logits, safe_labels, num_classes,
                        label_smoothing=label_smoothing,
                        focal_gamma=focal_gamma,
                        focal_alpha=focal_alpha) * weights

  if top_k_percent_pixels >= 1.0:
    return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.reduce_sum(weights))
  fraction = top_k_fraction(top_k_percent_pixels, hard_example_mining_step,
                            global_step)
  num_pixels = tf.size(losses)
  k = tf.maximum(1, tf.cast(tf.cast(num_pixels, tf.float32) * fraction,
                            tf.int32))
  top_losses, _ = tf.math.top_k(losses, k=k, sorted=False)
  num_present = tf.reduce_sum(tf.cast(top_losses > 0, tf.float32))
  return tf.math.divide_no_nan(tf.reduce_sum(top_losses), num_present)


def labels_at_logits_size(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """`labels` [B, H, W] resized to the logits' [h, w] by nearest neighbour
  with corners aligned (official `upsample_logits=False`): no label is ever
  mixed with another or with the ignore label."""
  size = tf.shape(logits)[1:3]
  resized = tf.raw_ops.ResizeNearestNeighbor(
      images=labels[..., tf.newaxis], size=size, align_corners=True,
      half_pixel_centers=False)
  return resized[..., 0]


def loss_from_config(logits: tf.Tensor, labels: tf.Tensor, num_classes: int,
                     ignore_label: int, config: config_lib.LossConfig,
                     global_step=None,
                     label_weights=None) -> tf.Tensor:
  """`softmax_cross_entropy_loss` with the options of a `config_lib.LossConfig`.

  Args:
    label_weights: Overrides `config.label_weights` (adaptive weighting
      passes a tensor here).

  With `config.upsample_logits=False`, `logits` are at their own stride
  and `labels` are downsampled to them.
  """
  if label_weights is None:
    label_weights = config.label_weights
  if not config.upsample_logits:
    labels = labels_at_logits_size(labels, logits)
  return softmax_cross_entropy_loss(
      logits, labels, num_classes, ignore_label,
      label_weights=label_weights,
      top_k_percent_pixels=config.top_k_percent_pixels,
      hard_example_mining_step=config.hard_example_mining_step,
      global_step=global_step,
      label_smoothing=config.label_smoothing,
      focal_gamma=config.focal_gamma,
      focal_alpha=config.focal_alpha)
