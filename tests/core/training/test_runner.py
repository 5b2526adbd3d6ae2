"""The estimator-style runner: resume, evaluation, distribution."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core import checkpoints
from deeplab.core.training import best_checkpoint
from deeplab.core.training import factory
from testing_utils import randomize_weights


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
  train_config = config_lib.TrainConfig.from_flat(
      train_logdir=model_dir, training_number_of_steps=6, optimizer="adam",
      base_learning_rate=1e-3, save_interval_steps=3, log_steps=1,
      image_summary_steps=3, **train_kwargs)
  return factory.make_runner(model_config, model_dir, 255,
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
  # The model travels with its checkpoints.
  assert checkpoints.read_model_config(model_dir) == tiny_model_config

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

  # Resuming another model (changed model flags): one clear error listing
  # the weights, not a raw shape mismatch.
  other = _runner(dataclasses.replace(tiny_model_config, num_classes=4),
                  model_dir)
  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match=r"--train_logdir .*logits/kernel: \[1, 1, 16, 3\]"):
    other.train(_input_fn, max_steps=6)


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
  # The last good checkpoint loads, with finite weights.
  fresh = _runner(model_config=tiny_model_config, model_dir=model_dir)
  assert fresh.restore_model().endswith("ckpt-3")
  assert all(np.all(np.isfinite(w)) for w in _weights(fresh))


def test_train_and_evaluate_alternates(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  runner = _runner(tiny_model_config, model_dir)
  results = runner.train_and_evaluate(_input_fn, _eval_input_fn, max_steps=4,
                                      eval_every_steps=2,
                                      eval_dir=str(tmp_path / "eval"))
  assert results["global_step"] == 4
  assert results["num_images"] == 4
  assert sum(map(sum, results["confusion_matrix"])) == 4 * 33 * 33
  assert 0.0 <= results["miou"] <= 1.0
  assert any(n.startswith("events") for n in os.listdir(tmp_path / "eval"))
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
  # The best checkpoint by mIoU is kept apart, and loads.
  best = best_checkpoint.best_metrics(model_dir)
  assert best["global_step"] in (2, 4)
  assert best["miou"] >= results["miou"]
  best_path = tf.train.latest_checkpoint(os.path.join(model_dir, "best"))
  assert best_path.endswith(f"ckpt-{best['global_step']}")
  assert runner.restore_model(best_path) == best_path


@pytest.fixture(scope="module")
def mirrored_strategy():
  """One MirroredStrategy over 2 logical CPUs, shared by the tests: several
  strategies in one process can clash on collective-op keys."""
  cpus = tf.config.list_logical_devices("CPU")
  if len(cpus) < 2:
    pytest.skip("needs two logical CPUs (configured in conftest)")
  return tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])


def _exact_input_fn(input_context=None):
  """4 fixed images: one global batch of 4, or two replica batches of 2."""
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 255, (4, 33, 33, 3)).astype(np.float32)
  labels = np.where(images.mean(-1) > 127, 1, 2).astype(np.int32)
  batch = 4
  if input_context is not None:
    batch = input_context.get_per_replica_batch_size(4)
  return tf.data.Dataset.from_tensor_slices(
      ({"image": images}, labels)).repeat().batch(batch)


def test_mirrored_step_equals_the_single_device_step(tiny_model_config,
                                                     tmp_path,
                                                     mirrored_strategy):
  """Two replicas with synchronized BatchNorm take the same step as one
  device on the same global batch: gradients are all-reduced and the loss
  is scaled by 1/replicas, as TF expects."""
  config = dataclasses.replace(tiny_model_config, sync_batch_norm=True,
                               aspp_dropout_rate=0.0)
  train_config = dict(optimizer="momentum", base_learning_rate=0.5,
                      learning_policy="step", learning_rate_decay_step=1000)

  def one_step(strategy, name):
    model_dir = str(tmp_path / name)
    # save_interval_secs=0: the replicas agree (all-reduce) on a save after
    # every step.
    cfg = config_lib.TrainConfig.from_flat(
        train_logdir=model_dir, training_number_of_steps=1, log_steps=1,
        image_summary_steps=0, save_interval_secs=0, **train_config)
    runner = factory.make_runner(config, model_dir, 255,
                                    train_config=cfg, strategy=strategy)
    with runner.strategy.scope():
      randomize_weights(runner.model, seed=3, scale=0.1)
    before = [w.numpy().copy() for w in runner.model.trainable_weights]
    runner.train(_exact_input_fn, max_steps=1)
    return runner, before

  single, before = one_step(None, "single")
  mirrored, _ = one_step(mirrored_strategy, "mirrored")
  assert mirrored.strategy.num_replicas_in_sync == 2
  assert os.path.exists(tmp_path / "mirrored" / "ckpt-1.index")
  assert mirrored.evaluate(_eval_input_fn)["num_images"] == 4
  pairs = zip(single.model.trainable_weights,
              mirrored.model.trainable_weights, before)
  moved = 0
  for a, b, initial in pairs:
    update = a.numpy() - initial
    scale = np.abs(update).max()
    moved += scale > 0
    for replica in mirrored.strategy.experimental_local_results(b):
      # The same update on every replica, and the single-device update, up
      # to the reduction order of two replicas (a missing 1/replicas scaling
      # would differ by the whole update).
      np.testing.assert_allclose(replica.numpy() - initial, update,
                                 rtol=0, atol=1e-2 * scale + 1e-8,
                                 err_msg=a.path)
  assert moved > 0.9 * len(before)


@pytest.mark.slow
def test_xla_compiled_bfloat16_training(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  runner = _runner(tiny_model_config, model_dir, jit_compile=True,
                   mixed_precision="bfloat16")
  assert runner.model.get_layer("logits").compute_dtype == "bfloat16"

  def input_fn(input_context=None):  # With a string feature, as the app's.
    return _input_fn(input_context).map(
        lambda f, l: ({**f, "filename": tf.constant("x")}, l))

  before = runner.model.get_layer("logits").kernel.numpy().copy()
  assert runner.train(input_fn, max_steps=2) == 2
  assert not np.array_equal(before,
                            runner.model.get_layer("logits").kernel.numpy())
