"""Wires configs into a `Runner`: model builder, optimizer and strategy.

The apps call `make_runner` with config dataclasses; tests call it too, so
what the apps run is what the tests check.
"""

from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.training import class_weights as class_weights_lib
from deeplab.core.training import learning_rate
from deeplab.core.training import losses
from deeplab.core.training import model_fn
from deeplab.core.training import runner as runner_lib
from deeplab.core.training import transfer

OPTIMIZERS = ("momentum", "adam", "adamw", "rmsprop")
MIXED_PRECISION = ("", "float16", "bfloat16")
# Official DeepLab's weight decay: 4e-5, and 1e-4 for ResNet backbones.
DEFAULT_WEIGHT_DECAY = 4e-5
RESNET_WEIGHT_DECAY = 1e-4
# Variables that decoupled weight decay (adamw) leaves alone: only kernels
# are decayed, as the L2 regulariser does.
_NO_DECAY = ("bias", "gamma", "beta", "moving_mean", "moving_variance")


def default_weight_decay(model_variant: str) -> float:
  """The official weight decay of a backbone (1e-4 for ResNet)."""
  return (RESNET_WEIGHT_DECAY if model_variant.startswith("resnet")
          else DEFAULT_WEIGHT_DECAY)


def make_learning_rate(train_config: config_lib.TrainConfig
                       ) -> learning_rate.DeepLabLearningRate:
  """The learning-rate schedule of `train_config`."""
  return learning_rate.DeepLabLearningRate(
      base_learning_rate=train_config.base_learning_rate,
      learning_policy=train_config.learning_policy,
      decay_steps=(train_config.training_number_of_steps -
                   train_config.slow_start_step),
      learning_power=train_config.learning_power,
      end_learning_rate=train_config.end_learning_rate,
      learning_rate_decay_step=train_config.learning_rate_decay_step,
      learning_rate_decay_factor=train_config.learning_rate_decay_factor,
      slow_start_step=train_config.slow_start_step,
      slow_start_learning_rate=train_config.slow_start_learning_rate,
      boundaries=train_config.learning_rate_boundaries,
      values=train_config.learning_rate_values,
      warmup_steps=train_config.warmup_steps,
      warmup_learning_rate=train_config.warmup_learning_rate)


def make_optimizer(train_config: config_lib.TrainConfig
                   ) -> keras.optimizers.Optimizer:
  """The optimizer and learning-rate schedule of `train_config`.

  `momentum` is official DeepLab's default. Weight decay is the models' L2
  regulariser on kernels (`--weight_decay`); `adamw` adds decoupled decay
  (`adamw_weight_decay`) on kernels only. Under `mixed_precision=float16`
  the optimizer is wrapped in a `LossScaleOptimizer` (dynamic loss scale).
  """
  schedule = make_learning_rate(train_config)
  name = train_config.optimizer
  if name == "momentum":
    optimizer = keras.optimizers.SGD(schedule, momentum=train_config.momentum)
  elif name == "adam":
    optimizer = keras.optimizers.Adam(schedule)
  elif name == "adamw":
    optimizer = keras.optimizers.AdamW(
        schedule, weight_decay=train_config.adamw_weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(_NO_DECAY))
  elif name == "rmsprop":
    optimizer = keras.optimizers.RMSprop(schedule,
                                         momentum=train_config.momentum)
  else:
    raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}; "
                     f"got {name!r}.")
  if train_config.mixed_precision == "float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def make_loss_config(train_config: config_lib.TrainConfig,
                     label_weights: Optional[Sequence[float]] = None
                     ) -> losses.LossConfig:
  """The `LossConfig` of `train_config` (`label_weights` overrides its)."""
  weights = label_weights if label_weights is not None else (
      train_config.label_weights)
  return losses.LossConfig(
      label_weights=tuple(weights) if weights is not None else None,
      top_k_percent_pixels=train_config.top_k_percent_pixels,
      hard_example_mining_step=train_config.hard_example_mining_step,
      label_smoothing=train_config.label_smoothing,
      focal_gamma=train_config.focal_gamma,
      focal_alpha=train_config.focal_alpha,
      aux_loss_weight=train_config.aux_loss_weight)


def _model_builder(model_config: config_lib.ModelConfig,
                   mixed_precision: str) -> Callable[[], keras.Model]:
  """Builds the model under the mixed-precision policy, if any."""
  if mixed_precision not in MIXED_PRECISION:
    raise ValueError("--mixed_precision must be float16, bfloat16 or empty; "
                     f"got {mixed_precision!r}.")

  def build():
    if not mixed_precision:
      return deeplab_model.build_deeplab_model(model_config)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(f"mixed_{mixed_precision}")
    try:
      return deeplab_model.build_deeplab_model(model_config)
    finally:
      keras.mixed_precision.set_global_policy(previous)

  return build


def make_strategy(name: str = "default",
                  num_gpus: int = 1,
                  tpu_address: str = "") -> tf.distribute.Strategy:
  """A `tf.distribute` strategy by name.

  Args:
    name: `default` (no distribution), `one_device`, `mirrored` (all local
      GPUs, or `num_gpus` of them), `multi_worker_mirrored` (from
      `TF_CONFIG`) or `tpu` (`tpu_address`).
    num_gpus: GPUs for `mirrored`; 0 means the CPU.
    tpu_address: The TPU's name or grpc address (`tpu` only).
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus[:num_gpus] if gpus and num_gpus else ["/cpu:0"]
    return tf.distribute.MirroredStrategy(devices)
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(
      "--distribution_strategy must be one of default, one_device, mirrored, "
      f"multi_worker_mirrored, tpu; got {name!r}.")


def _initial_checkpoint_loader(train_config: config_lib.TrainConfig
                               ) -> Optional[Callable[[keras.Model], object]]:
  """`init_fn(model)` loading --tf_initial_checkpoint, or None without one.

  Raises:
    FileNotFoundError: now, rather than after the model is built, when the
      checkpoint does not exist.
  """
  if not train_config.tf_initial_checkpoint:
    return None
  transfer.resolve_checkpoint(train_config.tf_initial_checkpoint)

  def init_fn(model):
    return transfer.load_initial_checkpoint(
        model, train_config.tf_initial_checkpoint,
        initialize_last_layer=train_config.initialize_last_layer,
        last_layers_contain_logits_only=(
            train_config.last_layers_contain_logits_only))

  return init_fn


def make_runner(model_config: config_lib.ModelConfig,
                model_dir: str,
                ignore_label: int,
                train_config: Optional[config_lib.TrainConfig] = None,
                strategy: Optional[tf.distribute.Strategy] = None,
                colormap: Optional[np.ndarray] = None,
                label_weights: Optional[Sequence[float]] = None
                ) -> runner_lib.Runner:
  """A `Runner` for `model_config`.

  Args:
    model_config: The network.
    model_dir: The train_logdir (checkpoints, training summaries).
    ignore_label: The dataset's ignore label.
    train_config: Optimizer, loss, transfer and checkpoint options; needed
      for training.
    strategy: A `tf.distribute.Strategy` (the default one when None).
    colormap: Colours for image summaries.
    label_weights: Per-class loss weights computed by the caller (e.g. by
      `class_weights.class_weights_from_tfrecords`); override
      `train_config.label_weights`.
  """
  train_config = train_config or config_lib.TrainConfig(train_logdir=model_dir)
  strategy = strategy or tf.distribute.get_strategy()
  run_config = runner_lib.RunConfig(
      save_interval_steps=train_config.save_interval_steps,
      save_interval_secs=train_config.save_interval_secs,
      max_to_keep=train_config.max_to_keep,
      log_steps=train_config.log_steps,
      image_summary_steps=train_config.image_summary_steps)
  if train_config.class_weighting not in class_weights_lib.SCHEMES:
    raise ValueError(
        f"--class_weighting must be one of "
        f"{', '.join(class_weights_lib.SCHEMES)}; got "
        f"{train_config.class_weighting!r}.")
  adaptive = None
  if train_config.class_weighting == "adaptive":
    with strategy.scope():
      adaptive = class_weights_lib.AdaptiveClassWeights(
          model_config.num_classes, ignore_label)
  weights = label_weights if label_weights is not None else (
      train_config.label_weights)
  if weights is not None and len(weights) != model_config.num_classes:
    raise ValueError(
        f"--label_weights has {len(weights)} values; the model has "
        f"{model_config.num_classes} classes.")

  if train_config.aux_loss_weight and not model_config.aux_head:
    raise ValueError(
        f"--aux_loss_weight={train_config.aux_loss_weight} needs a model "
        "with an auxiliary head (ModelConfig.aux_head=True).")
  init_fn = _initial_checkpoint_loader(train_config)

  if train_config.freeze_level not in transfer.FREEZE_LEVELS:
    raise ValueError(
        f"--freeze_level must be one of {', '.join(transfer.FREEZE_LEVELS)}; "
        f"got {train_config.freeze_level!r}.")
  train_options = runner_lib.TrainOptions(
      freeze_level=train_config.freeze_level,
      transfer_steps=train_config.transfer_steps,
      last_layer_gradient_multiplier=(
          train_config.last_layer_gradient_multiplier),
      last_layers_contain_logits_only=(
          train_config.last_layers_contain_logits_only),
      jit_compile=train_config.jit_compile,
      save_input_state=train_config.deterministic,
      keep_best_checkpoint=train_config.keep_best_checkpoint)
  return runner_lib.Runner(
      model_fn=model_fn.model_fn,
      build_model=_model_builder(model_config, train_config.mixed_precision),
      model_dir=model_dir,
      num_classes=model_config.num_classes,
      ignore_label=ignore_label,
      build_optimizer=lambda: make_optimizer(train_config),
      strategy=strategy,
      run_config=run_config,
      colormap=colormap,
      freeze_batch_norm=not train_config.fine_tune_batch_norm,
      init_fn=init_fn,
      loss_config=make_loss_config(train_config, weights),
      adaptive_class_weights=adaptive,
      train_options=train_options)
