"""Tests of the MobileNetV3 segmentation backbones
(deeplab.core.modeling.backbones.mobilenet_v3)."""

import keras
import pytest

import backbone_test_utils as btu
from deeplab.core.modeling import layers
from deeplab.core.modeling.backbones import mobilenet_v3


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("name,final,low_level", [
    ("mobilenet_v3_large_seg", 480, {4: 72, 8: 120, 16: 672}),
    ("mobilenet_v3_small_seg", 288, {4: 16, 8: 88, 16: 144}),
])
def test_endpoint_shapes(name, final, low_level, output_stride):
  model = btu.backbone(name, output_stride)
  n = btu.side(btu.SIZE, output_stride)
  assert tuple(model.output["final"].shape) == (None, n, n, final)
  for stride, channels in low_level.items():
    m = btu.side(btu.SIZE, min(stride, output_stride))
    assert tuple(model.output[f"decoder_{stride}"].shape) == (
        None, m, m, channels)


def test_small_gets_a_residual_where_its_stride_is_dropped():
  # As slim's mobilenet_base: a block whose stride output_stride drops has
  # stride 1 and, with unchanged depth (48 -> 48), a residual add. So the
  # small model at OS8/16 is not its OS32 model made dense, unlike large.
  def has_add(output_stride):
    names = {l.name for l in btu.backbone("mobilenet_v3_small_seg",
                                          output_stride).layers}
    return "MobilenetV3.expanded_conv_8.add" in names
  assert not has_add(32) and has_add(16) and has_add(8)


@pytest.mark.parametrize("name,output_stride", [
    ("mobilenet_v3_large_seg", 8), ("mobilenet_v3_large_seg", 16)])
def test_atrous_equivalence(name, output_stride):
  nominal = btu.randomize(btu.backbone(name, 32))
  # Squeeze-and-excitation averages over the whole map, which differs
  # between dense and subsampled maps; constant gates (zero kernel, random
  # bias) leave the dilation logic as the only thing compared.
  for layer in nominal.layers:
    if layer.name.endswith("squeeze_excite.Conv_1"):
      kernel, bias = layer.get_weights()
      layer.set_weights([kernel * 0, bias])
  dense = btu.backbone(name, output_stride)
  btu.copy_weights(nominal, dense)
  btu.assert_atrous_equivalent(dense, nominal, output_stride, btu.images())


def test_seg_variants_halve_the_last_block():
  model = btu.backbone("mobilenet_v3_large_seg", 32)
  filters = lambda n: model.get_layer(f"MobilenetV3.{n}").filters
  # Official: expansions 336, 480, 480; outputs 80; last conv 480.
  assert [filters(f"expanded_conv_{i}.expand") for i in (12, 13, 14)] == [
      336, 480, 480]
  assert filters("expanded_conv_12.project") == 80
  assert filters("Conv_1") == 480
  # Block 0 does not expand (16 -> 16); SE squeezes 672 / 4 -> 168.
  names = {l.name for l in model.layers}
  assert "MobilenetV3.expanded_conv.expand" not in names
  assert filters("expanded_conv_11.squeeze_excite.Conv") == 168
  assert model.get_layer("MobilenetV3.expanded_conv_3.depthwise"
                         ).kernel_size == (5, 5)
  small = btu.backbone("mobilenet_v3_small_seg", 32)
  filters = lambda n: small.get_layer(f"MobilenetV3.{n}").filters
  assert [filters(f"expanded_conv_{i}.expand") for i in (8, 9, 10)] == [
      144, 288, 288]
  assert filters("Conv_1") == 288
  # Small block 0 strides and has SE without expansion (16 -> 8).
  assert filters("expanded_conv.squeeze_excite.Conv") == 8


def test_quant_friendly_drops_depthwise_batch_norm():
  inputs = keras.Input((33, 33, 3))
  endpoints = mobilenet_v3.build_mobilenet_v3(
      inputs, "mobilenet_v3_small_seg", quant_friendly=True)
  model = keras.Model(inputs, endpoints["final"])
  names = {l.name for l in model.layers}
  assert "MobilenetV3.expanded_conv_1.depthwise.BatchNorm" not in names
  assert model.get_layer("MobilenetV3.expanded_conv_1.depthwise").use_bias


def test_activations_round_trip_through_serialization():
  layer = keras.layers.Activation(mobilenet_v3.hard_swish)
  clone = keras.layers.deserialize(keras.layers.serialize(layer))
  assert clone.activation is mobilenet_v3.hard_swish
  assert float(layers.hard_sigmoid(keras.ops.convert_to_tensor(0.0))
               ) == pytest.approx(0.5, abs=1e-4)
  # One registration: the name resolves to the one function.
  assert keras.saving.get_registered_object("deeplab>hard_sigmoid") is (
      layers.hard_sigmoid)
