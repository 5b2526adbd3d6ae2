"""Tests of the official-DeepLab backbones: aligned Xception
(deeplab.core.modeling.backbones.xception) and ResNet-v1 (deeplab.core.modeling.backbones.resnet_v1)."""

import keras
import pytest

import backbone_test_utils as btu
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling.backbones import resnet_v1
from deeplab.core.modeling.backbones import xception

VARIANTS = ("xception_41", "xception_65", "xception_71", "resnet_v1_50",
            "resnet_v1_50_beta", "resnet_v1_101", "resnet_v1_101_beta")
LOW_LEVEL_CHANNELS = {
    "xception_41": {4: 256, 8: 728, 16: 1024},
    "xception_65": {4: 256, 8: 728, 16: 1024},
    "xception_71": {4: 256, 8: 728, 16: 1024},
}
for _name in VARIANTS[3:]:
  LOW_LEVEL_CHANNELS[_name] = {4: 256, 8: 512, 16: 1024}


# xception_65 and resnet_v1_101 share their block structure with
# xception_41 and resnet_v1_101_beta, so OS16 suffices for them.
@pytest.mark.parametrize("name,output_stride", [
    (name, os) for name in VARIANTS for os in (8, 16, 32)
    if os == 16 or name not in ("xception_65", "resnet_v1_101")])
def test_endpoint_shapes(name, output_stride):
  model = btu.backbone(name, output_stride)
  size = btu.SIZE
  final = btu.side(size, output_stride)
  assert tuple(model.output["final"].shape) == (None, final, final, 2048)
  for stride, channels in LOW_LEVEL_CHANNELS[name].items():
    got = tuple(model.output[f"decoder_{stride}"].shape)
    n = btu.side(size, min(stride, output_stride))
    assert got == (None, n, n, channels), (stride, got)


@pytest.mark.parametrize("name,output_stride", [
    ("xception_41", 8), ("xception_41", 16), ("xception_71", 16),
    ("xception_65", 16), ("resnet_v1_50", 8), ("resnet_v1_50", 16),
    ("resnet_v1_101_beta", 16), ("resnet_v1_50_beta", 8)])
def test_atrous_equivalence(name, output_stride):
  nominal = btu.randomize(btu.backbone(name, 32))
  dense = btu.backbone(name, output_stride)
  btu.copy_weights(nominal, dense)
  btu.assert_atrous_equivalent(dense, nominal, output_stride, btu.images())


def test_layer_counts_and_official_names():
  # Units per flow, as the official definitions.
  def units(model, prefix):
    return len({l.name.split(".unit_")[1].split(".")[0]
                for l in model.layers if l.name.startswith(prefix)})
  assert units(btu.backbone("xception_41", 16),
               "xception_41.middle_flow.block1.") == 8
  assert units(btu.backbone("xception_71", 16),
               "xception_71.middle_flow.block1.") == 16
  assert units(btu.backbone("resnet_v1_101", 16),
               "resnet_v1_101.block3.") == 23
  model = btu.backbone("xception_65", 16)
  layer = model.get_layer("xception_65.entry_flow.block1.unit_1."
                          "xception_module.separable_conv1_depthwise")
  assert isinstance(layer, keras.layers.DepthwiseConv2D)
  assert model.get_layer("xception_65.entry_flow.conv1_1.BatchNorm")


def test_dilation_rates_follow_stack_blocks_dense():
  model = btu.backbone("resnet_v1_50_beta", 16, multi_grid=(1, 2, 4))
  rate = lambda unit: model.get_layer(
      f"resnet_v1_50.{unit}.bottleneck_v1.conv2").dilation_rate[0]
  # The unit whose stride is dropped keeps rate 1; block4 gets 2 * (1,2,4).
  assert [rate("block3.unit_6"), rate("block4.unit_1"),
          rate("block4.unit_2"), rate("block4.unit_3")] == [1, 2, 4, 8]
  # Without --multi_grid, official resnet_v1_beta's default [1, 1, 1].
  model = btu.backbone("resnet_v1_50_beta", 16)
  assert [rate("block4.unit_1"), rate("block4.unit_3")] == [2, 2]
  model = btu.backbone("xception_41", 8)
  rate = lambda scope: model.get_layer(
      f"xception_41.{scope}.unit_1.xception_module.separable_conv3_depthwise"
  ).dilation_rate[0]
  assert [rate("entry_flow.block3"), rate("middle_flow.block1"),
          rate("exit_flow.block1"), rate("exit_flow.block2")] == [1, 2, 2, 4]


def test_multi_grid_and_bad_arguments():
  assert resnet_v1.default_multi_grid("resnet_v1_50") == (1, 1, 1)
  assert resnet_v1.default_multi_grid("resnet_v1_101_beta") == (1, 1, 1)
  inputs = keras.Input((33, 33, 3))
  with pytest.raises(ValueError, match="output_stride"):
    xception.build_xception(inputs, output_stride=4)
  with pytest.raises(ValueError, match="multi_grid"):
    resnet_v1.build_resnet_v1(inputs, multi_grid=(1, 2))
  with pytest.raises(ValueError, match="--multi_grid"):
    config_lib.ModelConfig(multi_grid=(1, 0, 1))


@pytest.mark.parametrize("name", ["xception_41", "resnet_v1_50_beta"])
def test_full_model_config_round_trip(name):
  config = config_lib.ModelConfig(
      model_variant=name, num_classes=3, atrous_rates=(6, 12, 18),
      decoder_output_stride=4, aspp_filters=16, decoder_filters=16,
      low_level_filters=8)
  model = deeplab_model.build_deeplab_model(config, input_shape=(33, 33, 3))
  clone = keras.Model.from_config(model.get_config())
  assert [l.name for l in clone.layers] == [l.name for l in model.layers]
  assert clone.count_params() == model.count_params()
  assert tuple(clone.output.shape) == (None, 33, 33, 3)


def test_xception_bounded_activation():
  inputs = keras.Input((33, 33, 3))
  endpoints = xception.build_xception(inputs, "xception_41",
                                      use_bounded_activation=True)
  model = keras.Model(inputs, endpoints)
  names = {l.name for l in model.layers}
  assert ("xception_41.middle_flow.block1.unit_1.xception_module."
          "separable_conv1_pointwise.clip") in names
  assert model.get_layer("xception_41.entry_flow.conv1_1.Relu"
                         ).max_value == 6.0
  btu.randomize(model)
  out = model(btu.images() * 50)
  low_level = out["entry_flow/block2/unit_1/xception_module/"
                  "separable_conv2_pointwise"].numpy()
  assert 0 < out["final"].numpy().max() <= 6.0
  assert low_level.min() >= -6.0 and low_level.max() <= 6.0
