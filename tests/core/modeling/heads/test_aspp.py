"""Tests of ASPP (deeplab.core.modeling.heads.aspp)."""

import keras
import numpy as np
import pytest

from deeplab.core.modeling import layers
from deeplab.core.modeling.heads import aspp as aspp_lib


def _features(size=9, channels=32, batch=2, seed=0):
  return np.random.default_rng(seed).normal(
      size=(batch, size, size, channels)).astype("float32")


@pytest.mark.parametrize("rates,branches", [((), 2), ((1, 2, 3), 5)])
def test_branch_counts(rates, branches):
  aspp = aspp_lib.ASPP(filters=16, atrous_rates=rates)
  aspp(_features())
  assert aspp.num_branches == branches
  assert len(aspp.atrous_convs) == len(rates)
  # The projection consumes all concatenated branches.
  assert aspp.projection.conv.kernel.shape == (1, 1, branches * 16, 16)


def test_aspp_lite_has_only_image_pooling_and_1x1():
  aspp = aspp_lib.ASPP(filters=16)
  aspp(_features())
  convs = [l.name for l in aspp._flatten_layers()  # pylint: disable=protected-access
           if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
  assert len(convs) == 3  # image_pooling, aspp0, concat_projection


def test_without_image_pooling():
  aspp = aspp_lib.ASPP(filters=16, atrous_rates=(1, 2, 3), image_pooling=False)
  assert aspp(_features()).shape == (2, 9, 9, 16)
  assert aspp.num_branches == 4


@pytest.mark.parametrize("separable", [True, False])
def test_atrous_branch_types(separable):
  aspp = aspp_lib.ASPP(filters=16, atrous_rates=(2, 4, 6),
                       use_separable_conv=separable)
  aspp(_features())
  branch = aspp.atrous_convs[2]
  if separable:
    assert isinstance(branch, layers.SplitSeparableConv2D)
    assert branch.depthwise.dilation_rate == (6, 6)
  else:
    assert isinstance(branch, layers.ConvBNReLU)
    assert branch.conv.kernel.shape == (3, 3, 32, 16)
    assert branch.conv.dilation_rate == (6, 6)


def test_output_shape_with_dynamic_sizes():
  inputs = keras.Input((None, None, 32))
  outputs = aspp_lib.ASPP(filters=16, atrous_rates=(1, 2, 3), name="aspp")(
      inputs)
  assert tuple(outputs.shape) == (None, None, None, 16)
  model = keras.Model(inputs, outputs)
  for size in (5, 8):
    assert model(_features(size)).shape == (2, size, size, 16)


def test_image_pooling_branch_is_constant_over_space():
  aspp = aspp_lib.ASPP(filters=16)
  x = _features(7)
  aspp(x)
  pooled = aspp.image_pooling_conv(x.mean(axis=(1, 2), keepdims=True))
  branch = aspp.image_pooling_resize([pooled, x]).numpy()
  np.testing.assert_allclose(branch, np.broadcast_to(branch[:, :1, :1], branch.shape))


def test_config_round_trip():
  aspp = aspp_lib.ASPP(
      filters=16, atrous_rates=(2, 4, 6), use_separable_conv=False,
      dropout_rate=0.2, batch_norm_momentum=0.9, batch_norm_epsilon=1e-5,
      weight_decay=1e-4, name="aspp")
  x = _features()
  y = aspp(x)
  config = aspp.get_config()
  clone = aspp_lib.ASPP.from_config(config)
  assert clone.get_config() == config
  assert clone.atrous_rates == (2, 4, 6)
  clone(x)
  clone.set_weights(aspp.get_weights())
  np.testing.assert_allclose(clone(x), y, atol=1e-6)
  # Also through Keras' generic serialization (registered class).
  restored = keras.layers.deserialize(keras.layers.serialize(aspp))
  assert isinstance(restored, aspp_lib.ASPP)


def test_training_mode_uses_dropout_and_batch_statistics():
  aspp = aspp_lib.ASPP(filters=16, dropout_rate=0.5)
  x = _features()
  inference = aspp(x, training=False).numpy()
  np.testing.assert_allclose(aspp(x).numpy(), inference)
  training = aspp(x, training=True).numpy()
  assert not np.allclose(training, inference)
  assert np.mean(training == 0) > np.mean(inference == 0)
