"""FusedBatchNormalization: Keras's BatchNormalization on the fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.modeling import batch_norm


def _pair(momentum=0.9, **kwargs):
  """A Keras BN and a fused BN with the same (non-trivial) weights."""
  keras_bn = keras.layers.BatchNormalization(momentum=momentum, **kwargs)
  fused_bn = batch_norm.FusedBatchNormalization(momentum=momentum, **kwargs)
  for layer in (keras_bn, fused_bn):
    layer.build((None, 6, 6, 5))
    layer.gamma.assign(np.linspace(0.5, 2., 5))
    layer.beta.assign(np.linspace(-1., 1., 5))
  return keras_bn, fused_bn


def _inputs():
  return tf.constant(np.random.default_rng(0).normal(
      2., 3., (4, 6, 6, 5)).astype(np.float32))


def test_training_matches_keras_outputs_gradients_and_moving_mean():
  keras_bn, fused_bn = _pair()
  x = _inputs()
  weights = tf.range(5, dtype=tf.float32)
  results = []
  for layer in (keras_bn, fused_bn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=True)
      loss = tf.reduce_sum(y * y * weights)
    results.append((y, *tape.gradient(loss, [x, layer.gamma, layer.beta])))
  for expected, actual in zip(*results):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(fused_bn.moving_mean, keras_bn.moving_mean,
                             atol=1e-6)
  # The fused kernel (like slim and tf.keras) updates the moving variance
  # with the unbiased batch variance: n / (n - 1) times Keras's.
  n = 4 * 6 * 6
  np.testing.assert_allclose(fused_bn.moving_variance.numpy() - 0.9,
                             (keras_bn.moving_variance.numpy() - 0.9) *
                             n / (n - 1), rtol=1e-5)


def test_inference_and_frozen_layers_use_the_moving_statistics():
  keras_bn, fused_bn = _pair()
  for layer in (keras_bn, fused_bn):
    layer.moving_mean.assign(np.linspace(-1., 3., 5))
    layer.moving_variance.assign(np.linspace(0.5, 4., 5))
  x = _inputs()
  np.testing.assert_allclose(fused_bn(x, training=False),
                             keras_bn(x, training=False), atol=1e-5)
  fused_bn.trainable = False
  before = fused_bn.moving_mean.numpy()
  np.testing.assert_allclose(fused_bn(x, training=True),
                             keras_bn(x, training=False), atol=1e-5)
  np.testing.assert_array_equal(fused_bn.moving_mean, before)


def test_mixed_precision_output_dtype():
  layer = batch_norm.FusedBatchNormalization(dtype="mixed_float16")
  y = layer(tf.cast(_inputs(), tf.float16), training=True)
  assert y.dtype == tf.float16 and layer.moving_mean.dtype == tf.float32


@pytest.mark.parametrize("kwargs", [dict(synchronized=True),
                                    dict(center=False)])
def test_unsupported_options_fall_back_to_keras(kwargs):
  layer = batch_norm.FusedBatchNormalization(**kwargs)
  reference = keras.layers.BatchNormalization(**kwargs)
  x = _inputs()
  for bn in (layer, reference):
    bn.build(x.shape)
  assert not layer._fusable(x, None)  # pylint: disable=protected-access
  np.testing.assert_allclose(layer(x, training=True),
                             reference(x, training=True), atol=1e-5)


def test_config_round_trip_and_checkpoint_compatibility(tmp_path):
  keras_bn, fused_bn = _pair(epsilon=1e-5)
  clone = keras.layers.deserialize(keras.layers.serialize(fused_bn))
  assert isinstance(clone, batch_norm.FusedBatchNormalization)
  assert clone.get_config() == fused_bn.get_config()
  # Same variables as Keras's layer: checkpoints load either way.
  keras_bn.moving_mean.assign(np.arange(5.))
  path = tf.train.Checkpoint(bn=keras_bn).save(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(bn=fused_bn).restore(path).assert_consumed()
  np.testing.assert_array_equal(fused_bn.moving_mean, np.arange(5.))
