"""Wires configs into a `Runner`: model builder, optimizer and strategy.

The apps call `make_runner` with config dataclasses; tests call it too, so
what the apps run is what the tests check.
"""

import dataclasses
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.training import class_weights as class_weights_lib
from deeplab.core.training import learning_rate
from deeplab.core.training import model_fn
from deeplab.core.training import runner as runner_lib
from deeplab.core.training import transfer

# Variables that decoupled weight decay (adamw) leaves alone: only kernels
# are decayed, as the L2 regulariser does.
_NO_DECAY = ("bias", "gamma", "beta", "moving_mean", "moving_variance")


def make_learning_rate(schedule: config_lib.ScheduleConfig,
                       training_number_of_steps: int
                       ) -> learning_rate.DeepLabLearningRate:
  """The learning-rate schedule of a `ScheduleConfig`."""
  return learning_rate.DeepLabLearningRate(
      base_learning_rate=schedule.base_learning_rate,
      learning_policy=schedule.learning_policy,
      decay_steps=training_number_of_steps - schedule.slow_start_step,
      learning_power=schedule.learning_power,
      end_learning_rate=schedule.end_learning_rate,
      learning_rate_decay_step=schedule.learning_rate_decay_step,
      learning_rate_decay_factor=schedule.learning_rate_decay_factor,
      slow_start_step=schedule.slow_start_step,
      slow_start_learning_rate=schedule.slow_start_learning_rate,
      boundaries=schedule.learning_rate_boundaries,
      values=schedule.learning_rate_values,
      warmup_steps=schedule.warmup_steps,
      warmup_learning_rate=schedule.warmup_learning_rate)


def make_optimizer(train_config: config_lib.TrainConfig
                   ) -> keras.optimizers.Optimizer:
  """The optimizer and learning-rate schedule of `train_config`.

  `momentum` is official DeepLab's default. Weight decay is the models' L2
  regulariser on kernels (`--weight_decay`); `adamw` adds decoupled decay
  (`adamw_weight_decay`) on kernels only. Under `mixed_precision=float16`
  the optimizer is wrapped in a `LossScaleOptimizer` (dynamic loss scale).
  """
  schedule = make_learning_rate(train_config.schedule,
                                train_config.training_number_of_steps)
  options = train_config.optimizer
  if options.optimizer == "momentum":
    optimizer = keras.optimizers.SGD(schedule, momentum=options.momentum)
  elif options.optimizer == "adam":
    optimizer = keras.optimizers.Adam(schedule)
  elif options.optimizer == "adamw":
    optimizer = keras.optimizers.AdamW(
        schedule, weight_decay=options.adamw_weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(_NO_DECAY))
  else:  # rmsprop; OptimizerConfig admits no other.
    optimizer = keras.optimizers.RMSprop(schedule, momentum=options.momentum)
  if train_config.distribution.mixed_precision == "float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def _model_builder(model_config: config_lib.ModelConfig,
                   mixed_precision: str) -> Callable[[], keras.Model]:
  """Builds the model under the mixed-precision policy, if any."""

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


def make_strategy(distribution: config_lib.DistributionConfig
                  ) -> tf.distribute.Strategy:
  """The `tf.distribute` strategy of a `DistributionConfig`.

  `default` is no distribution (or `mirrored` with `num_gpus` > 1);
  `one_device`; `mirrored` (all local GPUs, or `num_gpus` of them; 0 means
  the CPU); `multi_worker_mirrored` (from `TF_CONFIG`); `tpu` (at `tpu`).
  """
  name, num_gpus = distribution.distribution_strategy, distribution.num_gpus
  if name == "default" and num_gpus > 1:
    name = "mirrored"
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
        tpu=distribution.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(
      "--distribution_strategy must be one of "
      f"{', '.join(config_lib.DISTRIBUTION_STRATEGIES)}; got {name!r}.")


def _initial_checkpoint_loader(transfer_config: config_lib.TransferConfig
                               ) -> Optional[Callable[[keras.Model], object]]:
  """`init_fn(model)` loading --tf_initial_checkpoint, or None without one.

  Raises:
    FileNotFoundError: now, rather than after the model is built, when the
      checkpoint does not exist.
  """
  path = transfer_config.tf_initial_checkpoint
  if not path:
    return None
  checkpoints.resolve_checkpoint(path, "tf_initial_checkpoint")

  def init_fn(model):
    return transfer.load_initial_checkpoint(
        model, path,
        initialize_last_layer=transfer_config.initialize_last_layer,
        last_layers_contain_logits_only=(
            transfer_config.last_layers_contain_logits_only))

  return init_fn


def make_loss_config(loss: config_lib.LossConfig, num_classes: int,
                     label_weights: Optional[Sequence[float]] = None
                     ) -> config_lib.LossConfig:
  """`loss`, with computed `label_weights` (which replace its own), checked
  against the number of classes."""
  if label_weights is not None:
    loss = dataclasses.replace(loss, label_weights=tuple(label_weights))
  if loss.label_weights is not None and len(loss.label_weights) != num_classes:
    raise ValueError(
        f"--label_weights has {len(loss.label_weights)} values; the model "
        f"has {num_classes} classes.")
  return loss


def _task(model_config, ignore_label, train_config, strategy, colormap,
          label_weights) -> runner_lib.Task:
  """The runner's `Task`: classes, loss, adaptive weights, model config."""
  loss = make_loss_config(train_config.loss, model_config.num_classes,
                          label_weights)
  if loss.aux_loss_weight and not model_config.aux_head:
    raise ValueError(
        f"--aux_loss_weight={loss.aux_loss_weight} needs a model "
        "with an auxiliary head (ModelConfig.aux_head=True).")
  adaptive = None
  if loss.class_weighting == "adaptive":
    with strategy.scope():
      adaptive = class_weights_lib.AdaptiveClassWeights(
          model_config.num_classes, ignore_label)
  return runner_lib.Task(
      num_classes=model_config.num_classes, ignore_label=ignore_label,
      loss_config=loss, adaptive_class_weights=adaptive, colormap=colormap,
      model_config=model_config)


def _run_config(checkpoint: config_lib.CheckpointConfig
                ) -> runner_lib.RunConfig:
  return runner_lib.RunConfig(
      save_interval_steps=checkpoint.save_interval_steps,
      save_interval_secs=checkpoint.save_interval_secs,
      max_to_keep=checkpoint.max_to_keep,
      log_steps=checkpoint.log_steps,
      image_summary_steps=checkpoint.image_summary_steps,
      profile_logdir=checkpoint.profile_logdir,
      profile_steps=checkpoint.profile_steps)


def _train_options(train_config: config_lib.TrainConfig
                   ) -> runner_lib.TrainOptions:
  options = train_config.transfer
  return runner_lib.TrainOptions(
      freeze_level=options.freeze_level,
      transfer_steps=options.transfer_steps,
      last_layer_gradient_multiplier=options.last_layer_gradient_multiplier,
      last_layers_contain_logits_only=options.last_layers_contain_logits_only,
      freeze_batch_norm=not options.fine_tune_batch_norm,
      jit_compile=train_config.distribution.jit_compile,
      save_input_state=train_config.distribution.deterministic,
      keep_best_checkpoint=train_config.checkpoint.keep_best_checkpoint)


def make_runner(model_config: config_lib.ModelConfig,
                model_dir: str,
                ignore_label: int,
                train_config: Optional[config_lib.TrainConfig] = None,
                strategy: Optional[tf.distribute.Strategy] = None,
                colormap: Optional[np.ndarray] = None,
                label_weights: Optional[Sequence[float]] = None
                ) -> runner_lib.Runner:
  """A training `Runner` for `model_config`.

  Args:
    model_config: The network; written beside the checkpoints as
      `model_config.json` when training starts.
    model_dir: The train_logdir (checkpoints, training summaries).
    ignore_label: The dataset's ignore label.
    train_config: Optimizer, loss, transfer and checkpoint options (the
      defaults when None).
    strategy: A `tf.distribute.Strategy` (the default one when None).
    colormap: Colours for image summaries.
    label_weights: Per-class loss weights computed by the caller (e.g. by
      `class_weights.class_weights_from_tfrecords`); override
      `train_config.loss.label_weights`.
  """
  train_config = train_config or config_lib.TrainConfig()
  strategy = strategy or tf.distribute.get_strategy()
  return runner_lib.Runner(
      model_fn=model_fn.model_fn,
      build_model=_model_builder(model_config,
                                 train_config.distribution.mixed_precision),
      model_dir=model_dir,
      task=_task(model_config, ignore_label, train_config, strategy, colormap,
                 label_weights),
      build_optimizer=lambda: make_optimizer(train_config),
      strategy=strategy,
      run_config=_run_config(train_config.checkpoint),
      train_options=_train_options(train_config),
      init_fn=_initial_checkpoint_loader(train_config.transfer))
