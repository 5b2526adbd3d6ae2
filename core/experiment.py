"""Wires configs into a `Runner`: model builder, optimizer and strategy.

The apps call `make_runner` with config dataclasses; tests call it too, so
what the apps run is what the tests check.
"""

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core import deeplab_model
from deeplab.core import learning_rate
from deeplab.core import model_fn
from deeplab.core import runner as runner_lib


def make_optimizer(train_config: config_lib.TrainConfig
                   ) -> keras.optimizers.Optimizer:
  """The optimizer and learning-rate schedule of `train_config`."""
  schedule = learning_rate.DeepLabLearningRate(
      base_learning_rate=train_config.base_learning_rate,
      learning_policy=train_config.learning_policy,
      decay_steps=(train_config.training_number_of_steps -
                   train_config.slow_start_step),
      learning_power=train_config.learning_power,
      end_learning_rate=train_config.end_learning_rate,
      learning_rate_decay_step=train_config.learning_rate_decay_step,
      learning_rate_decay_factor=train_config.learning_rate_decay_factor,
      slow_start_step=train_config.slow_start_step,
      slow_start_learning_rate=train_config.slow_start_learning_rate)
  if train_config.optimizer == "momentum":
    return keras.optimizers.SGD(schedule, momentum=train_config.momentum)
  if train_config.optimizer == "adam":
    return keras.optimizers.Adam(schedule)
  raise ValueError(
      f"--optimizer must be 'momentum' or 'adam', got "
      f"{train_config.optimizer!r}.")


def make_strategy(name: str = "default",
                  num_gpus: int = 1) -> tf.distribute.Strategy:
  """A `tf.distribute` strategy by name.

  Args:
    name: `default` (no distribution), `one_device`, `mirrored` (all local
      GPUs, or `num_gpus` of them) or `multi_worker_mirrored` (from
      `TF_CONFIG`).
    num_gpus: GPUs for `mirrored`; 0 means the CPU.
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
  raise ValueError(
      "--distribution_strategy must be one of default, one_device, mirrored, "
      f"multi_worker_mirrored; got {name!r}.")


def make_runner(model_config: config_lib.ModelConfig,
                model_dir: str,
                ignore_label: int,
                train_config: Optional[config_lib.TrainConfig] = None,
                strategy: Optional[tf.distribute.Strategy] = None,
                colormap: Optional[np.ndarray] = None) -> runner_lib.Runner:
  """A `Runner` for `model_config`.

  Args:
    model_config: The network.
    model_dir: The train_logdir (checkpoints, training summaries).
    ignore_label: The dataset's ignore label.
    train_config: Optimizer and checkpoint cadence; needed for training.
    strategy: A `tf.distribute.Strategy` (the default one when None).
    colormap: Colours for image summaries.
  """
  train_config = train_config or config_lib.TrainConfig(train_logdir=model_dir)
  run_config = runner_lib.RunConfig(
      save_interval_steps=train_config.save_interval_steps,
      save_interval_secs=train_config.save_interval_secs,
      max_to_keep=train_config.max_to_keep,
      log_steps=train_config.log_steps,
      image_summary_steps=train_config.image_summary_steps)
  return runner_lib.Runner(
      model_fn=model_fn.model_fn,
      build_model=lambda: deeplab_model.build_deeplab_model(model_config),
      model_dir=model_dir,
      num_classes=model_config.num_classes,
      ignore_label=ignore_label,
      build_optimizer=lambda: make_optimizer(train_config),
      strategy=strategy,
      run_config=run_config,
      colormap=colormap,
      freeze_batch_norm=not train_config.fine_tune_batch_norm)
