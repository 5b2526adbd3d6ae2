"""Wiring of configs into optimizers, losses, mixed precision and runners."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.training import factory
from deeplab.core.training import model_fn as model_fn_lib


def _train_config(**kwargs):
  return config_lib.TrainConfig.from_flat(train_logdir="/tmp/unused", **kwargs)


@pytest.mark.parametrize("name, cls", [
    ("momentum", keras.optimizers.SGD), ("adam", keras.optimizers.Adam),
    ("adamw", keras.optimizers.AdamW), ("rmsprop", keras.optimizers.RMSprop)])
def test_optimizers(name, cls):
  optimizer = factory.make_optimizer(_train_config(optimizer=name))
  assert type(optimizer) is cls  # pylint: disable=unidiomatic-typecheck
  with pytest.raises(ValueError, match="--optimizer"):
    factory.make_optimizer(_train_config(optimizer="lamb"))


def test_adamw_decays_kernels_only():
  optimizer = factory.make_optimizer(_train_config(
      optimizer="adamw", adamw_weight_decay=0.1, base_learning_rate=0.5,
      learning_policy="step"))
  layer = keras.layers.Dense(2, name="dense")
  layer.build((None, 2))
  layer.kernel.assign(np.ones((2, 2), np.float32))
  layer.bias.assign(np.ones(2, np.float32))
  optimizer.apply_gradients([(tf.zeros((2, 2)), layer.kernel),
                             (tf.zeros(2), layer.bias)])
  # Zero gradients: only decoupled decay moves the kernel (by lr * wd).
  np.testing.assert_allclose(layer.kernel.numpy(), 1 - 0.5 * 0.1, rtol=1e-6)
  np.testing.assert_allclose(layer.bias.numpy(), 1.0)


def test_float16_trains_with_loss_scaling(tiny_model_config):
  train_config = _train_config(mixed_precision="float16", optimizer="adam",
                               base_learning_rate=1e-3)
  optimizer = factory.make_optimizer(train_config)
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  model = factory._model_builder(tiny_model_config, "float16")()  # pylint: disable=protected-access
  # The policy applies to this model only; the output stays float32.
  assert keras.mixed_precision.global_policy().name == "float32"
  assert model.get_layer("logits").compute_dtype == "float16"
  assert model.output.dtype == "float32"
  params = model_fn_lib.ModelFnParams(model=model, num_classes=3,
                                      ignore_label=255, optimizer=optimizer)
  images = np.random.default_rng(0).uniform(0, 255, (2, 33, 33, 3))
  labels = np.where(images.mean(-1) > 127, 1, 2).astype(np.int32)
  before = model.get_layer("logits").kernel.numpy().copy()
  spec = model_fn_lib.model_fn({"image": tf.constant(images, tf.float32)},
                               tf.constant(labels), model_fn_lib.ModeKeys.TRAIN,
                               params)
  assert np.isfinite(float(spec.loss))
  assert int(optimizer.iterations) == 1
  assert not np.array_equal(before, model.get_layer("logits").kernel.numpy())


def test_bad_options_are_named(tiny_model_config, tmp_path):
  model_dir = str(tmp_path)
  with pytest.raises(ValueError, match="--label_weights"):
    factory.make_runner(tiny_model_config, model_dir, 255,
                           train_config=_train_config(label_weights=(1.0, 2.0)))
  with pytest.raises(ValueError, match="--class_weighting"):
    factory.make_runner(tiny_model_config, model_dir, 255,
                           train_config=_train_config(class_weighting="inverse"))
  with pytest.raises(ValueError, match="--freeze_level"):
    factory.make_runner(tiny_model_config, model_dir, 255,
                           train_config=_train_config(freeze_level="head"))
  with pytest.raises(ValueError, match="--mixed_precision"):
    factory.make_runner(tiny_model_config, model_dir, 255,
                           train_config=_train_config(mixed_precision="int8"))


def test_runner_options_follow_the_config(tiny_model_config, tmp_path):
  runner = factory.make_runner(
      tiny_model_config, str(tmp_path), 255, train_config=_train_config(
          jit_compile=True, deterministic=True, freeze_level="backbone",
          transfer_steps=5, class_weighting="adaptive", focal_gamma=2.0,
          label_smoothing=0.1, top_k_percent_pixels=0.5,
          hard_example_mining_step=10))
  options = runner.train_options
  assert options.jit_compile and options.save_input_state
  assert (options.freeze_level, options.transfer_steps) == ("backbone", 5)
  loss = runner._params.get_loss_config()  # pylint: disable=protected-access
  assert (loss.focal_gamma, loss.label_smoothing) == (2.0, 0.1)
  assert (loss.top_k_percent_pixels, loss.hard_example_mining_step) == (0.5, 10)
  assert runner._params.adaptive_class_weights is not None  # pylint: disable=protected-access


def test_adaptive_class_weights_update_during_training(tiny_model_config,
                                                       tmp_path):
  runner = factory.make_runner(
      tiny_model_config, str(tmp_path), 255, train_config=_train_config(
          class_weighting="adaptive", optimizer="adam"))
  adaptive = runner._params.adaptive_class_weights  # pylint: disable=protected-access
  params = runner._params  # pylint: disable=protected-access
  params.model = runner.model
  params.optimizer = factory.make_optimizer(_train_config(optimizer="adam"))
  labels = np.ones((2, 33, 33), np.int32)
  labels[:, :11] = 2
  images = np.full((2, 33, 33, 3), 100.0, np.float32)
  model_fn_lib.model_fn({"image": tf.constant(images)}, tf.constant(labels),
                        model_fn_lib.ModeKeys.TRAIN, params)
  # One batch of 2/3 class 1 and 1/3 class 2 moves the uniform start.
  expected = 0.99 * np.full(3, 1 / 3) + 0.01 * np.array([0, 2 / 3, 1 / 3])
  np.testing.assert_allclose(adaptive.frequencies.numpy(), expected,
                             rtol=1e-5)
