"""Tests of the shared layers (deeplab.core.modeling.layers)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.modeling import layers


def _round_trip(layer):
  """from_config(get_config()) gives a layer with the same config."""
  clone = layer.__class__.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  return clone


def test_resize_bilinear_aligns_corners_and_takes_dynamic_sizes():
  resize = layers.ResizeBilinear(name="resize")
  x = tf.reshape(tf.range(9, dtype=tf.float32), (1, 3, 3, 1))
  y = resize([x, tf.zeros((1, 5, 5, 7))]).numpy()
  assert y.shape == (1, 5, 5, 1)
  # Corners coincide and the midpoints interpolate exactly.
  np.testing.assert_allclose(y[0, ::2, ::2, 0], x[0, :, :, 0])
  np.testing.assert_allclose(y[0, 1, 1, 0], 2.0)

  fn = tf.function(resize, input_signature=[[
      tf.TensorSpec((None, None, None, 1)), tf.TensorSpec((None, None, None, 3))]])
  assert fn([x, tf.zeros((1, 9, 4, 3))]).shape == (1, 9, 4, 1)


def test_resize_bilinear_half_pixel_option_and_config():
  resize = _round_trip(layers.ResizeBilinear(align_corners=False))
  x = tf.random.uniform((1, 4, 6, 2))
  y = resize([x, tf.zeros((1, 8, 12, 1))])
  np.testing.assert_allclose(y, tf.image.resize(x, (8, 12)), atol=1e-6)


def test_resize_bilinear_keeps_static_shape():
  out = layers.ResizeBilinear()([keras.Input((5, 5, 4)), keras.Input((17, 9, 3))])
  assert tuple(out.shape) == (None, 17, 9, 4)


@pytest.mark.parametrize("mode,expected", [
    ("zero_mean_unit_range", [-1.0, 0.0, 1.0]),
    ("imagenet_mean", [0.0 - 123.15, 127.5 - 115.90, 255.0 - 103.06]),
])
def test_image_preprocessing(mode, expected):
  layer = _round_trip(layers.ImagePreprocessing(mode))
  x = np.array([[[[0.0, 0.0, 0.0], [127.5, 127.5, 127.5],
                  [255.0, 255.0, 255.0]]]], "float32")
  y = layer(x).numpy()
  got = [y[0, 0, 0, 0], y[0, 0, 1, 1], y[0, 0, 2, 2]]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


def test_image_preprocessing_rejects_unknown_mode():
  with pytest.raises(ValueError, match="bogus"):
    layers.ImagePreprocessing("bogus")


@pytest.mark.parametrize("layer", [
    layers.ConvBNReLU(8, 3, dilation_rate=2, weight_decay=1e-4),
    layers.SplitSeparableConv2D(8, dilation_rate=3, weight_decay=1e-4),
])
def test_conv_blocks_round_trip(layer):
  x = np.random.default_rng(0).normal(size=(2, 9, 9, 5)).astype("float32")
  y = layer(x)
  assert y.shape == (2, 9, 9, 8)
  assert np.all(y.numpy() >= 0)  # ReLU
  clone = _round_trip(layer)
  clone(x)
  clone.set_weights(layer.get_weights())
  np.testing.assert_allclose(clone(x), y, atol=1e-6)


def test_split_separable_conv_weight_decay_skips_depthwise():
  layer = layers.SplitSeparableConv2D(8, weight_decay=0.5)
  layer.build((None, None, None, 4))
  assert layer.depthwise.depthwise_regularizer is None
  pointwise = layer.pointwise.kernel.numpy()
  # slim convention: weight_decay * sum(w**2) / 2.
  np.testing.assert_allclose(
      float(layer.pointwise.kernel_regularizer(pointwise)),
      0.5 * np.sum(pointwise**2) / 2, rtol=1e-5)
  assert layers.l2_regularizer(0.0) is None


def test_freeze_batch_norm_reaches_nested_layers():
  inputs = keras.Input((None, None, 4))
  x = layers.ConvBNReLU(8, name="block")(inputs)
  x = keras.layers.BatchNormalization(name="top_bn")(x)
  model = keras.Model(inputs, x)
  assert layers.freeze_batch_norm(model) == 2
  assert not model.get_layer("block").bn.trainable
  assert not model.get_layer("top_bn").trainable


def test_norm_activation_groups_batch_norm_options():
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.ModelConfig(batch_norm_momentum=0.9,
                                  use_bounded_activation=True)
  norm = layers.NormActivation.from_model_config(config)
  assert (norm.momentum, norm.epsilon, norm.activation) == (0.9, 1e-3,
                                                            "relu6")
  head = norm.for_head()
  assert head.epsilon == layers.HEAD_BATCH_NORM_EPSILON == 1e-5
  assert head.momentum == 0.9
  bn = head.batch_norm("bn")
  assert (bn.epsilon, bn.momentum, bn.name) == (1e-5, 0.9, "bn")
  assert head.layer_kwargs()["batch_norm_epsilon"] == 1e-5
  with pytest.raises(ValueError, match="activation"):
    layers.NormActivation(activation="gelu")


def test_heads_use_the_official_epsilon_backbone_its_own(tiny_model_config):
  """Official model.py: 1e-5 in ASPP and the decoder; the backbone keeps
  its own (1e-3 for MobileNetV2)."""
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  model = deeplab_model.build_deeplab_model(tiny_model_config)
  for head in ("aspp", "decoder"):
    epsilons = {bn.epsilon for bn in layers.iter_batch_norm_layers(
        model.get_layer(head))}
    assert epsilons == {1e-5}, head
  assert model.get_layer("bn_Conv1").epsilon == 1e-3
