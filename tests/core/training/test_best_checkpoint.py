"""best_checkpoint: the best-mIoU checkpoint kept in train_logdir/best."""

import os

import numpy as np
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.training import best_checkpoint
from deeplab.core.training import factory


def _input_fn(input_context=None):
  del input_context
  images = np.random.default_rng(0).uniform(0, 255, (2, 33, 33, 3))
  labels = np.ones((2, 33, 33), np.int32)
  return tf.data.Dataset.from_tensor_slices(
      ({"image": images.astype(np.float32)}, labels)).repeat().batch(2)


def _runner(model_config, model_dir):
  train_config = config_lib.TrainConfig.from_flat(
      training_number_of_steps=2, optimizer="adam", save_interval_steps=1,
      image_summary_steps=0)
  return factory.make_runner(model_config, model_dir, 255,
                             train_config=train_config)


def _result(model_dir, miou, step):
  return {"miou": miou, "global_step": step,
          "checkpoint_path": os.path.join(model_dir, f"ckpt-{step}")}


def test_keep_if_best_keeps_only_improvements(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  runner = _runner(tiny_model_config, model_dir)
  runner.train(_input_fn, max_steps=2)
  assert best_checkpoint.best_metrics(model_dir) is None
  assert best_checkpoint.keep_if_best(model_dir, _result(model_dir, 0.5, 1))
  assert not best_checkpoint.keep_if_best(model_dir,
                                          _result(model_dir, 0.4, 2))
  assert best_checkpoint.best_metrics(model_dir)["global_step"] == 1
  assert best_checkpoint.keep_if_best(model_dir, _result(model_dir, 0.6, 2))
  assert sorted(os.listdir(os.path.join(model_dir, "best"))) == [
      "best_metrics.json", "checkpoint", "ckpt-2.data-00000-of-00001",
      "ckpt-2.index", "model_config.json"]
  # `best` is a train_logdir of its own: evaluate.py and export take it.
  best = os.path.join(model_dir, "best")
  assert checkpoints.read_model_config(best) == tiny_model_config
  assert checkpoints.resolve_checkpoint(best).endswith("best/ckpt-2")
