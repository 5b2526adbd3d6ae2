"""Tests of the quantization-aware-training rewrite (core/modeling/quantize.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import quantize
import trained_demo


def reference_fake_quant(x, low, high, num_bits=8, narrow_range=False):
  """TF's FakeQuantWithMinMaxVars in NumPy (fake_quant_ops_functor.h):
  nudge the range so that 0 is exact, clamp, round to the grid."""
  quant_min, quant_max = (1 if narrow_range else 0), 2**num_bits - 1
  scale = (high - low) / (quant_max - quant_min)
  zero_point = np.clip(np.round(quant_min - low / scale), quant_min,
                       quant_max)
  nudged_low = (quant_min - zero_point) * scale
  nudged_high = (quant_max - zero_point) * scale
  clamped = np.clip(x, nudged_low, nudged_high)
  return np.floor((clamped - nudged_low) / scale + 0.5) * scale + nudged_low


def test_fake_quant_config_round_trip():
  layer = quantize.FakeQuant(ema_decay=0.99, num_bits=7, fixed_range=(0, 255),
                             name="q")
  clone = quantize.FakeQuant.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  assert (clone.ema_decay, clone.num_bits, clone.fixed_range) == (
      0.99, 7, (0.0, 255.0))
  with pytest.raises(ValueError, match="ema_decay"):
    quantize.FakeQuant(ema_decay=1.0)


def test_fake_quant_moving_average_ranges_and_numerics():
  rng = np.random.default_rng(0)
  layer = quantize.FakeQuant()
  first = rng.uniform(-1.0, 3.0, (2, 5, 5, 3)).astype(np.float32)
  out = layer(first, training=True).numpy()
  # First batch: the range is the batch's own.
  low, high = first.min(), first.max()
  np.testing.assert_allclose([layer.min.numpy(), layer.max.numpy()],
                             [low, high], rtol=1e-6)
  np.testing.assert_allclose(out, reference_fake_quant(first, low, high),
                             atol=1e-6)
  second = rng.uniform(0.5, 5.0, (2, 5, 5, 3)).astype(np.float32)
  out = layer(second, training=True).numpy()
  # Second: the mean of the two batch ranges, each widened to hold 0.
  low, high = (low + 0.0) / 2, (high + second.max()) / 2
  np.testing.assert_allclose([layer.min.numpy(), layer.max.numpy()],
                             [low, high], rtol=1e-6)
  np.testing.assert_allclose(out, reference_fake_quant(second, low, high),
                             atol=1e-6)
  # Inference uses the stored range and leaves it alone.
  out = layer(first * 3, training=False).numpy()
  np.testing.assert_allclose(out, reference_fake_quant(first * 3, low, high),
                             atol=1e-6)
  assert layer.updates.numpy() == 2
  # Later updates decay at ema_decay (0.999), as contrib's MovingAvgQuantize.
  layer.updates.assign(10_000.0)
  layer(second, training=True)
  np.testing.assert_allclose(layer.max.numpy(),
                             0.999 * high + 0.001 * second.max(), rtol=1e-6)
  layer.active = False
  np.testing.assert_array_equal(layer(first * 9, training=True), first * 9)


@pytest.mark.parametrize("depthwise", [False, True])
def test_weights_per_channel_and_folding_commutes(depthwise):
  rng = np.random.default_rng(1)
  kernel = rng.normal(0, 1, (3, 3, 4, 2 if depthwise else 5)).astype(
      np.float32)
  quantized = quantize.fake_quant_weights(tf.constant(kernel),
                                          depthwise).numpy()
  channels = kernel.reshape(9, -1) if depthwise else kernel.reshape(-1, 5)
  q_channels = quantized.reshape(channels.shape)
  for c in range(channels.shape[1]):
    bound = np.abs(channels[:, c]).max()
    np.testing.assert_allclose(
        q_channels[:, c],
        reference_fake_quant(channels[:, c], -bound, bound,
                             narrow_range=True), atol=1e-6)
    steps = q_channels[:, c] / (bound / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
  # Scaling output channels (folding a BatchNorm) before the fake-quant or
  # after it gives the same weights.
  scale = rng.uniform(0.1, 3.0, channels.shape[1]).astype(np.float32)
  shaped = scale.reshape(kernel.shape[2:]) if depthwise else scale
  np.testing.assert_allclose(
      quantize.fake_quant_weights(tf.constant(kernel * shaped), depthwise),
      quantized * shaped, rtol=1e-5, atol=1e-6)


def test_fold_batch_norm_matches_conv_then_batch_norm():
  rng = np.random.default_rng(2)
  conv = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=True)
  bn = keras.layers.BatchNormalization(epsilon=1e-3)
  x = rng.normal(0, 1, (1, 6, 6, 4)).astype(np.float32)
  bn(conv(x))
  for weight in conv.weights + bn.weights:
    weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))
  kernel, bias = quantize.fold_batch_norm(conv.kernel, conv.bias, bn,
                                          depthwise=True)
  folded = keras.ops.depthwise_conv(x, kernel, padding="same") + bias
  np.testing.assert_allclose(folded, bn(conv(x), training=False),
                             rtol=1e-5, atol=1e-5)


def _tiny_config(**changes):
  return config_lib.ModelConfig(**dict(trained_demo.MODEL_CONFIG, **changes))


def test_flag_off_model_unchanged_and_float_checkpoint_loads(tmp_path):
  float_model = deeplab_model.build_deeplab_model(_tiny_config())
  assert not quantize.is_quantized(float_model)
  # No layer's call is replaced (quantize_model replaces them per layer).
  assert not any("call" in vars(l) for l in float_model._flatten_layers())  # pylint: disable=protected-access
  rng = np.random.default_rng(3)
  for weight in float_model.weights:
    if "moving_variance" not in weight.path:
      weight.assign(rng.normal(0, 0.2, weight.shape).astype(np.float32))
  prefix = tf.train.Checkpoint(model=float_model).write(
      str(tmp_path / "float" / "ckpt"))

  model = deeplab_model.build_deeplab_model(
      _tiny_config(quantize_delay_step=0))
  assert quantize.is_quantized(model)
  names = {q.name for q in quantize.quantizers(model)}
  # ASPP ends in its projection block: that block's output is quantized
  # once, not again as ASPP's (the converter rejects the double range).
  assert "aspp_concat_projection_output_quantizer" in names
  assert "aspp_output_quantizer" not in names
  # Inputs fed by a pooled mean or a concatenation get their own range.
  assert {"aspp_image_pooling_conv_input_quantizer",
          "aspp_concat_projection_conv_input_quantizer"} <= names
  counts = quantize.describe(model)
  # Every BatchNorm of this model follows a conv, so every one is folded.
  assert counts.folded_batch_norms == sum(
      isinstance(l, keras.layers.BatchNormalization)
      for l in model._flatten_layers())  # pylint: disable=protected-access
  # The float checkpoint holds every float weight of the quantized model,
  # by the same checkpoint keys; only the new range variables are missing.
  match = checkpoints.match_variables(model, prefix)
  assert not match.mismatched
  assert match.missing and all("quantizer" in p for p in match.missing)
  assert len(model.weights) - len(match.missing) == len(float_model.weights)
  tf.train.Checkpoint(model=model).restore(prefix).expect_partial()

  images = rng.uniform(0, 255, (1, 33, 33, 3)).astype(np.float32)
  expected = float_model(images, training=False).numpy()
  quantize.set_active(model, False)
  np.testing.assert_array_equal(model(images, training=False), expected)
  quantize.set_active(model, True)
  model(images, training=True)  # Calibrates the ranges on this batch.
  quantized = model(images, training=False).numpy()
  assert not np.array_equal(quantized, expected)
  # 8-bit simulation: close to the float logits, relative to their range.
  error = np.abs(quantized - expected).max() / np.abs(expected).max()
  assert error < 0.1, error


def _tiny_quantized_model():
  """Conv, synchronized BatchNorm, ReLU, conv: quantized, random weights."""
  inputs = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
  x = keras.layers.BatchNormalization(synchronized=True)(x)
  x = keras.layers.ReLU()(x)
  model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))
  rng = np.random.default_rng(4)
  for weight in model.weights:
    positive = "batch_norm" in weight.path
    weight.assign((rng.uniform(0.5, 1.5, weight.shape) if positive else
                   rng.normal(0, 0.5, weight.shape)).astype(np.float32))
  return quantize.quantize_model(model)


def _train(model, strategy, batches, delay):
  """SGD steps of `model` on `batches` (global batches), quantization
  switched on at step `delay` (the runner's --quantize_delay_step)."""
  optimizer = keras.optimizers.SGD(0.01)

  def replica_step(images):
    with tf.GradientTape() as tape:
      # The mean over the global batch of 4.
      loss = tf.reduce_sum(tf.square(model(images, training=True))) / 4.0
    variables = model.trainable_variables
    optimizer.apply_gradients(
        zip(tape.gradient(loss, variables), variables))

  for step, images in enumerate(batches):
    if quantize.set_active(model, step >= delay) or step == 0:
      step_fn = tf.function(lambda x: strategy.run(replica_step, args=(x,)))
    halves = lambda context, images=images: tf.constant(  # pylint: disable=g-long-lambda
        images[2 * context.replica_id_in_sync_group:][:2])
    if strategy.num_replicas_in_sync == 1:
      step_fn(tf.constant(images))
    else:
      step_fn(strategy.experimental_distribute_values_from_function(halves))
    if step < delay:  # The float graph leaves the ranges alone.
      assert all(q.updates.numpy() == 0 for q in quantize.quantizers(model))


def test_mirrored_ranges_are_those_of_the_global_batch():
  """Under a 2-replica MirroredStrategy each replica sees half the batch;
  the ranges still come out mirrored, equal on both replicas, and equal to
  a single device's on the whole batch (not the mean of the halves')."""
  cpus = tf.config.list_logical_devices("CPU")
  if len(cpus) < 2:
    pytest.skip("needs two logical CPUs (configured in conftest)")
  # Reduction to one device, not collective ops: a second collective
  # strategy in the process (test_runner's) would clash on instance keys.
  strategy = tf.distribute.MirroredStrategy(
      [d.name for d in cpus[:2]],
      cross_device_ops=tf.distribute.ReductionToOneDevice())
  rng = np.random.default_rng(5)
  # The two halves have different ranges, so mean != global.
  batches = [np.concatenate([rng.uniform(-1, 1, (2, 8, 8, 3)),
                             rng.uniform(-3, 5, (2, 8, 8, 3))]).astype(
                                 np.float32) for _ in range(3)]
  with strategy.scope():
    mirrored = _tiny_quantized_model()
  single = _tiny_quantized_model()
  _train(mirrored, strategy, batches, delay=1)
  _train(single, tf.distribute.get_strategy(), batches, delay=1)
  # The first conv's input (its layer name depends on what the process
  # built before: Keras numbers layers globally).
  first = quantize.quantizers(mirrored)[0]
  assert first.name.endswith("_input_quantizer"), first.name
  # Two updates (decay 1/2): the mean of the two whole batches' ranges.
  np.testing.assert_allclose(
      [first.min.numpy(), first.max.numpy()],
      [(batches[1].min() + batches[2].min()) / 2,
       (batches[1].max() + batches[2].max()) / 2], rtol=1e-6)
  for ours, reference in zip(quantize.quantizers(mirrored),
                             quantize.quantizers(single)):
    assert reference.updates.numpy() == 2
    for name in ("min", "max"):
      variable = getattr(ours, name).value
      assert isinstance(variable, tf.distribute.DistributedValues)
      replicas = [v.numpy() for v in
                  strategy.experimental_local_results(variable)]
      assert len(replicas) == 2 and replicas[0] == replicas[1]
      expected = getattr(reference, name).numpy()
      initial = dict(zip(("min", "max"), quantize.INITIAL_RANGE))[name]
      assert expected != initial
      np.testing.assert_allclose(replicas[0], expected, rtol=1e-5,
                                 err_msg=f"{ours.name} {name}")
  for ours, reference in zip(mirrored.weights, single.weights):
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5,
                               atol=1e-6, err_msg=ours.path)
