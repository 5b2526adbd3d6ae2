"""Tests of the DeepLabv3+ decoder (deeplab.core.modeling.heads.decoder)."""

import keras
import numpy as np
import pytest

from deeplab.core.modeling import layers
from deeplab.core.modeling.heads import decoder as decoder_lib


def _inputs(encoder_size=5, low_level_size=17, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=(2, encoder_size, encoder_size, 16)).astype("float32"),
          rng.normal(size=(2, low_level_size, low_level_size, 24)).astype(
              "float32")]


def test_output_has_low_level_size_and_filters():
  decoder = decoder_lib.DeepLabV3PlusDecoder(filters=32, low_level_filters=8)
  assert decoder(_inputs()).shape == (2, 17, 17, 32)
  assert decoder.feature_projection.conv.kernel.shape == (1, 1, 24, 8)
  # The first 3x3 conv sees [encoder (16), projected low level (8)].
  assert decoder.convs[0].depthwise.kernel.shape == (3, 3, 24, 1)


def test_dynamic_sizes():
  encoder = keras.Input((None, None, 16))
  low_level = keras.Input((None, None, 24))
  outputs = decoder_lib.DeepLabV3PlusDecoder(filters=32, name="decoder")(
      [encoder, low_level])
  assert tuple(outputs.shape) == (None, None, None, 32)
  model = keras.Model([encoder, low_level], outputs)
  assert model(_inputs(5, 17)).shape == (2, 17, 17, 32)
  assert model(_inputs(3, 10)).shape == (2, 10, 10, 32)


def test_static_shapes_propagate():
  outputs = decoder_lib.DeepLabV3PlusDecoder(filters=32)(
      [keras.Input((9, 9, 16)), keras.Input((33, 33, 24))])
  assert tuple(outputs.shape) == (None, 33, 33, 32)


@pytest.mark.parametrize("separable", [True, False])
def test_conv_types(separable):
  decoder = decoder_lib.DeepLabV3PlusDecoder(
      filters=32, low_level_filters=8, use_separable_conv=separable)
  decoder(_inputs())
  assert len(decoder.convs) == 2
  conv_type = layers.SplitSeparableConv2D if separable else layers.ConvBNReLU
  assert all(isinstance(c, conv_type) for c in decoder.convs)
  if not separable:
    assert decoder.convs[0].conv.kernel.shape == (3, 3, 24, 32)


def test_config_round_trip():
  decoder = decoder_lib.DeepLabV3PlusDecoder(
      filters=32, low_level_filters=8, use_separable_conv=False,
      batch_norm_momentum=0.9, weight_decay=1e-4, name="decoder")
  x = _inputs()
  y = decoder(x)
  config = decoder.get_config()
  clone = decoder_lib.DeepLabV3PlusDecoder.from_config(config)
  assert clone.get_config() == config
  clone(x)
  clone.set_weights(decoder.get_weights())
  np.testing.assert_allclose(clone(x), y, atol=1e-6)


def test_rejects_zero_convs():
  with pytest.raises(ValueError, match="num_convs"):
    decoder_lib.DeepLabV3PlusDecoder(num_convs=0)
