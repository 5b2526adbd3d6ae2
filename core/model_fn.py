"""`model_fn`: one step of DeepLab in each mode, with Estimator's contract.

`model_fn(features, labels, mode, params)` returns a `ModelSpec` with the
predictions, the loss, the train op (the optimizer update, already applied
in TRAIN mode) and the metric updates. The runner (`core/runner.py`) calls
it inside `strategy.run` and a `tf.function`, once per replica.
"""

import dataclasses
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from deeplab.core import losses
from deeplab.core import metrics
from deeplab.core import multiscale


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
    label_weights: Optional per-class loss weights.
    top_k_percent_pixels: Hard-pixel mining fraction (1.0 keeps all pixels).
    eval_scales: Input scales averaged in EVAL and PREDICT modes (official
      `eval_scales`); (1.0,) is one plain pass.
    add_flipped_images: Also average left-right flipped inputs (EVAL and
      PREDICT).
  """

  model: keras.Model
  num_classes: int
  ignore_label: int
  optimizer: Optional[keras.optimizers.Optimizer] = None
  label_weights: Optional[Sequence[float]] = None
  top_k_percent_pixels: float = 1.0
  eval_scales: Sequence[float] = (1.0,)
  add_flipped_images: bool = False


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


def _losses(logits, labels, params: ModelFnParams):
  data_loss = losses.softmax_cross_entropy_loss(
      logits, labels, params.num_classes, params.ignore_label,
      label_weights=params.label_weights,
      top_k_percent_pixels=params.top_k_percent_pixels)
  regularization = (tf.add_n([tf.cast(l, tf.float32)
                              for l in params.model.losses])
                    if params.model.losses else tf.constant(0.0))
  return data_loss, data_loss + regularization


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
    _, logits = multiscale.predict(model, images, params.eval_scales,
                                   params.add_flipped_images)
    predictions = _predictions(logits)
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
  num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
  with tf.GradientTape() as tape:
    logits = model(images, training=True)
    data_loss, loss = _losses(logits, labels, params)
    # Gradients are summed across replicas, so each replica contributes
    # its share of the mean.
    scaled_loss = loss / num_replicas
  variables = model.trainable_variables
  gradients = tape.gradient(scaled_loss, variables)
  params.optimizer.apply_gradients(zip(gradients, variables))
  return ModelSpec(mode, _predictions(logits), loss=loss, data_loss=data_loss,
                   train_op=params.optimizer.iterations)
