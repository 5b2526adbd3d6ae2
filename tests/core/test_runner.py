"""The estimator-style runner: resume, evaluation, export, distribution."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core import experiment
from deeplab.core import runner as runner_lib


def _input_fn(input_context=None):
  del input_context
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (4, 33, 33, 3)).astype(np.float32)
  labels = np.where(images.mean(-1) > 127, 1, 2).astype(np.int32)
  return tf.data.Dataset.from_tensor_slices(
      ({"image": images}, labels)).repeat().batch(2)


def _eval_input_fn(input_context=None):
  return _input_fn(input_context).take(2)


def _runner(model_config, model_dir, strategy=None, **train_kwargs):
  train_config = config_lib.TrainConfig(
      train_logdir=model_dir, training_number_of_steps=6, optimizer="adam",
      base_learning_rate=1e-3, save_interval_steps=3, log_steps=1,
      image_summary_steps=3, **train_kwargs)
  return experiment.make_runner(model_config, model_dir, 255,
                                train_config=train_config, strategy=strategy,
                                colormap=np.eye(3, dtype=np.uint8) * 255)


def _weights(runner):
  return [w.numpy().copy() for w in runner.model.weights]


def test_resume_continues_the_global_step(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  first = _runner(tiny_model_config, model_dir)
  assert first.train(_input_fn, max_steps=3) == 3
  saved = _weights(first)
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-3")

  second = _runner(tiny_model_config, model_dir)
  # A fresh runner starts from the checkpoint, not from scratch.
  assert second.train(_input_fn, max_steps=5) == 5
  assert int(second._ensure_optimizer().iterations) == 5
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-5")

  third = _runner(tiny_model_config, model_dir)
  third._checkpoint_manager()
  third._checkpoint.restore(os.path.join(model_dir, "ckpt-3"))
  for restored, original in zip(_weights(third), saved):
    np.testing.assert_array_equal(restored, original)

  # Rerunning on a finished train_logdir trains nothing and changes nothing.
  fourth = _runner(tiny_model_config, model_dir)
  assert fourth.train(_input_fn, max_steps=5) == 5
  assert sorted(n for n in os.listdir(model_dir) if n.endswith(".index")) == [
      "ckpt-3.index", "ckpt-5.index"]


def test_evaluate_reports_metrics_and_summaries(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  runner = _runner(tiny_model_config, model_dir)
  runner.train(_input_fn, max_steps=2)
  results = runner.evaluate(_eval_input_fn, eval_dir=str(tmp_path / "eval"))
  assert results["num_images"] == 4
  assert results["global_step"] == 2
  assert sum(map(sum, results["confusion_matrix"])) == 4 * 33 * 33
  assert 0.0 <= results["miou"] <= 1.0
  assert any(n.startswith("events") for n in os.listdir(tmp_path / "eval"))


def test_evaluate_without_checkpoint_names_the_folder(tiny_model_config,
                                                      tmp_path):
  runner = _runner(tiny_model_config, str(tmp_path / "empty"))
  with pytest.raises(FileNotFoundError, match="empty"):
    runner.evaluate(_eval_input_fn)


def test_non_finite_loss_names_the_step(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  runner = _runner(tiny_model_config, model_dir)
  runner.train(_input_fn, max_steps=3)

  def nan_input_fn(input_context=None):
    return _input_fn(input_context).map(
        lambda f, l: ({"image": f["image"] * np.nan}, l))

  with pytest.raises(FloatingPointError, match="step 4"):
    runner.train(nan_input_fn, max_steps=6)
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-3")


def test_train_and_evaluate_alternates(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  runner = _runner(tiny_model_config, model_dir)
  results = runner.train_and_evaluate(_input_fn, _eval_input_fn, max_steps=4,
                                      eval_every_steps=2)
  assert results["global_step"] == 4
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")


def test_mirrored_strategy_two_cpu_replicas(tiny_model_config, tmp_path):
  cpus = tf.config.list_logical_devices("CPU")
  if len(cpus) < 2:
    pytest.skip("needs two logical CPUs (configured in conftest)")
  strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])
  runner = _runner(tiny_model_config, str(tmp_path / "train"), strategy)
  assert runner.train(_input_fn, max_steps=2) == 2
  assert runner.strategy.num_replicas_in_sync == 2
  results = runner.evaluate(_eval_input_fn)
  assert results["num_images"] == 4
