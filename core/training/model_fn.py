"""`model_fn`: one step of DeepLab in each mode, with Estimator's contract.

`model_fn(features, labels, mode, params)` returns a `ModelSpec` with the
predictions, the loss, the train op (the optimizer update, already applied
in TRAIN mode) and the metric updates. The runner (`core/training/runner.py`) calls
it inside `strategy.run` and a `tf.function`, once per replica.
"""

import dataclasses
from typing import Any, Dict, Optional, Sequence

import keras
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.evaluation import metrics
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import multiscale
from deeplab.core.training import losses
from deeplab.core.training import transfer


class ModeKeys:
  """The three modes, named as tf.estimator.ModeKeys named them."""
  TRAIN = "train"
  EVAL = "eval"
  PREDICT = "infer"


@dataclasses.dataclass
class ModelFnParams:
  """What `model_fn` needs besides the batch.

  Attributes:
    model: The Keras DeepLab model (built under the strategy's scope).
    num_classes: Number of classes.
    ignore_label: Label value that is not trained on or scored.
    optimizer: The optimizer; required in TRAIN mode.
    eval_scales: Input scales averaged in EVAL and PREDICT modes (official
      `eval_scales`); (1.0,) is one plain pass.
    add_flipped_images: Also average left-right flipped inputs (EVAL and
      PREDICT).
    loss_config: All loss options (`config.LossConfig`); plain
      cross-entropy when None.
    adaptive_class_weights: Optional `class_weights.AdaptiveClassWeights`,
      updated by every training batch; its weights replace the loss
      config's `label_weights`.
    gradient_multipliers: Variable path -> gradient multiplier (official
      `last_layer_gradient_multiplier`).
    train_model: What TRAIN mode runs, when not `model` itself: `model`'s
      logits before upsampling, for `loss_config.upsample_logits=False`
      (`deeplab_model.logits_before_upsampling`).
  """

  model: keras.Model
  num_classes: int
  ignore_label: int
  optimizer: Optional[keras.optimizers.Optimizer] = None
  eval_scales: Sequence[float] = (1.0,)
  add_flipped_images: bool = False
  loss_config: Optional[config_lib.LossConfig] = None
  adaptive_class_weights: Optional[Any] = None
  gradient_multipliers: Optional[Dict[str, float]] = None
  train_model: Optional[keras.Model] = None

  def get_loss_config(self) -> config_lib.LossConfig:
    """`loss_config`, or the default (plain cross-entropy)."""
    if self.loss_config is None:
      self.loss_config = config_lib.LossConfig()
    return self.loss_config


@dataclasses.dataclass
class ModelSpec:
  """What `model_fn` returns, like tf.estimator.EstimatorSpec.

  Attributes:
    mode: One of `ModeKeys`.
    predictions: `semantic` (int32 [B, H, W] labels) and `probabilities`
      (float32 [B, H, W, C]).
    loss: Total loss (data loss plus weight decay) in TRAIN and EVAL.
    data_loss: The cross-entropy part of the loss.
    train_op: The optimizer's step counter after the update (TRAIN only).
    metric_updates: Per-batch values that the runner accumulates; here
      `confusion_matrix` (EVAL only).
  """

  mode: str
  predictions: Dict[str, tf.Tensor]
  loss: Optional[tf.Tensor] = None
  data_loss: Optional[tf.Tensor] = None
  train_op: Optional[tf.Tensor] = None
  metric_updates: Dict[str, tf.Tensor] = dataclasses.field(default_factory=dict)


def _predictions(logits: tf.Tensor) -> Dict[str, tf.Tensor]:
  logits = tf.cast(logits, tf.float32)
  return {
      "semantic": tf.argmax(logits, axis=-1, output_type=tf.int32),
      "probabilities": tf.nn.softmax(logits, axis=-1),
  }


def _pyramid_data_loss(scales_to_logits, labels, params: ModelFnParams,
                       global_step=None, label_weights=None):
  """Official `add_softmax_cross_entropy_loss_for_each_scale`: one loss for
  each scale's logits and one for the merged logits, summed; each at the
  labels' size (upsample_logits) or against labels resized to the logits'
  (`losses.loss_from_config`)."""
  config = params.get_loss_config()
  total = 0.0
  for logits in scales_to_logits.values():
    if config.upsample_logits:
      logits = deeplab_layers.resize_bilinear(logits, tf.shape(labels)[1:3])
    total += losses.loss_from_config(
        logits, labels, params.num_classes, params.ignore_label, config,
        global_step=global_step, label_weights=label_weights)
  return total


def _losses(logits, labels, params: ModelFnParams, global_step=None,
            label_weights=None, aux_logits=None, scales_to_logits=None):
  """(data loss, total loss): cross-entropy (+ aux, or over an image
  pyramid's `scales_to_logits`) and weight decay."""
  config = params.get_loss_config()
  if scales_to_logits is not None:
    data_loss = _pyramid_data_loss(scales_to_logits, labels, params,
                                   global_step, label_weights)
  else:
    data_loss = losses.loss_from_config(
        logits, labels, params.num_classes, params.ignore_label, config,
        global_step=global_step, label_weights=label_weights)
  if aux_logits is not None and config.aux_loss_weight:
    data_loss += config.aux_loss_weight * losses.loss_from_config(
        aux_logits, labels, params.num_classes, params.ignore_label, config,
        global_step=global_step, label_weights=label_weights)
  regularization = (tf.add_n([tf.cast(l, tf.float32)
                              for l in params.model.losses])
                    if params.model.losses else tf.constant(0.0))
  return data_loss, data_loss + regularization


def _train_logits(model, images, params: ModelFnParams):
  """(logits, aux_logits or None, scales_to_logits or None) of a training
  step: with the model's `image_pyramid`, official `multi_scale_logits`
  (`multiscale.pyramid_logits`; `logits` are the merged ones)."""
  pyramid = getattr(model, "image_pyramid", None)
  if not pyramid:
    # A model with an auxiliary head returns [logits, aux_logits].
    logits, aux_logits = deeplab_model.split_outputs(
        (params.train_model or model)(images, training=True))
    return logits, aux_logits, None
  if len(model.outputs) > 1:
    raise ValueError("--image_pyramid does not train an auxiliary head: set "
                     "--aux_loss_weight=0.")
  scales_to_logits = multiscale.pyramid_logits(
      model, images, pyramid, model.merge_method, training=True)
  return scales_to_logits[multiscale.MERGED_LOGITS], None, scales_to_logits


def model_fn(features: Dict[str, tf.Tensor],
             labels: Optional[tf.Tensor],
             mode: str,
             params: ModelFnParams) -> ModelSpec:
  """Runs DeepLab on one (per-replica) batch.

  Args:
    features: Dict with `image`: float32 [B, H, W, 3] pixels in 0..255.
    labels: int32 [B, H, W] labels, or None in PREDICT mode.
    mode: One of `ModeKeys`.
    params: A `ModelFnParams`.

  Returns:
    A `ModelSpec`.
  """
  model = params.model
  images = features["image"]

  if mode in (ModeKeys.PREDICT, ModeKeys.EVAL):
    # Multi-scale + flip averages the softmax (official DeepLab); its
    # `logits` are then log-probabilities, whose softmax is that average, so
    # the EVAL loss below is the cross-entropy of the averaged prediction.
    labels_predicted, probabilities, logits = multiscale.predict_labels(
        model, images, params.eval_scales, params.add_flipped_images)
    predictions = {"semantic": labels_predicted,
                   "probabilities": probabilities}
    if mode == ModeKeys.PREDICT:
      return ModelSpec(mode, predictions)
    data_loss, loss = _losses(logits, labels, params)
    confusion = metrics.confusion_matrix_update(
        labels, predictions["semantic"], params.num_classes,
        params.ignore_label)
    return ModelSpec(mode, predictions, loss=loss, data_loss=data_loss,
                     metric_updates={"confusion_matrix": confusion})

  if mode != ModeKeys.TRAIN:
    raise ValueError(f"Unknown mode {mode!r}.")
  if params.optimizer is None:
    raise ValueError("model_fn needs params.optimizer in TRAIN mode.")
  optimizer = params.optimizer
  num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
  label_weights = None
  if params.adaptive_class_weights is not None:
    label_weights = params.adaptive_class_weights.update(labels)
  with tf.GradientTape() as tape:
    logits, aux_logits, scales_to_logits = _train_logits(model, images,
                                                         params)
    data_loss, loss = _losses(logits, labels, params,
                              global_step=optimizer.iterations,
                              label_weights=label_weights,
                              aux_logits=aux_logits,
                              scales_to_logits=scales_to_logits)
    # Gradients are summed across replicas, so each replica contributes
    # its share of the mean.
    scaled_loss = loss / num_replicas
    # float16: scale the loss up; the LossScaleOptimizer unscales gradients.
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
      scaled_loss = optimizer.scale_loss(scaled_loss)
  variables = model.trainable_variables
  gradients = tape.gradient(scaled_loss, variables)
  gradients = transfer.apply_gradient_multipliers(
      gradients, variables, params.gradient_multipliers)
  optimizer.apply_gradients(zip(gradients, variables))
  if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    # Report a non-finite gradient as a NaN loss, so that the runner stops
    # before saving weights it corrupted: fused kernels (BatchNorm + ReLU
    # under oneDNN) can turn NaN activations into zeros, leaving the loss
    # finite while the gradients are not. (float16 loss scaling skips such
    # steps by design.)
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                            for g in gradients if g is not None])
    loss = tf.where(finite, loss, tf.constant(float("nan"), loss.dtype))
  return ModelSpec(mode, _predictions(logits), loss=loss, data_loss=data_loss,
                   train_op=params.optimizer.iterations)
