"""Tests of the model-variant registry (deeplab.core.modeling.model_variants)."""

import dataclasses

import keras
import pytest

from deeplab.core import config as config_lib
from deeplab.core.modeling import model_variants
from deeplab.core.modeling.backbones import mobilenet_v2


def test_unknown_variant_names_it_and_lists_known_ones():
  with pytest.raises(ValueError) as error:
    model_variants.get_model_variant("mobilenet_v9")
  message = str(error.value)
  assert "--model_variant" in message
  assert "'mobilenet_v9'" in message
  assert "mobilenet_v2" in message


def test_mobilenet_v2_entry():
  variant = model_variants.get_model_variant("mobilenet_v2")
  assert "mobilenet_v2" in model_variants.known_model_variants()
  assert variant.preprocessing == "zero_mean_unit_range"
  assert variant.mean_pixel == (127.5, 127.5, 127.5)
  assert variant.default_atrous_rates == ()
  assert variant.decoder_endpoints[4] == "layer_4/depthwise_output"
  with pytest.raises(dataclasses.FrozenInstanceError):
    variant.name = "other"  # type: ignore[misc]


def test_decoder_endpoints_exist_at_their_stride():
  variant = model_variants.get_model_variant("mobilenet_v2")
  config = config_lib.ModelConfig(output_stride=16)
  endpoints = variant.backbone_builder(keras.Input((65, 65, 3)), config)
  sizes = {4: 17, 8: 9, 16: 5}
  for stride, name in variant.decoder_endpoints.items():
    assert endpoints[name].shape[1] == sizes[stride], name
  assert endpoints["final"].shape[1:] == (5, 5, 320)
  assert set(endpoints) <= set(mobilenet_v2.endpoint_names())


def test_register_rejects_duplicates_and_bad_preprocessing():
  existing = model_variants.get_model_variant("mobilenet_v2")
  with pytest.raises(ValueError, match="already registered"):
    model_variants.register_model_variant(existing)
  with pytest.raises(ValueError, match="preprocessing"):
    model_variants.ModelVariant(
        name="x", backbone_builder=existing.backbone_builder,
        preprocessing="bgr")


def test_imagenet_mean_variant_pads_with_the_mean():
  variant = model_variants.ModelVariant(
      name="x", backbone_builder=lambda images, config: {},
      preprocessing="imagenet_mean")
  assert variant.mean_pixel == (123.15, 115.90, 103.06)


@pytest.mark.parametrize("name,preprocessing", [
    ("xception_41", "zero_mean_unit_range"),
    ("xception_65", "zero_mean_unit_range"),
    ("xception_71", "zero_mean_unit_range"),
    ("resnet_v1_50", "imagenet_mean"), ("resnet_v1_101", "imagenet_mean"),
    ("resnet_v1_50_beta", "zero_mean_unit_range"),
    ("resnet_v1_101_beta", "zero_mean_unit_range"),
    ("mobilenet_v3_large_seg", "zero_mean_unit_range"),
    ("mobilenet_v3_small_seg", "zero_mean_unit_range"),
    ("resnet50", "caffe"), ("resnet101", "caffe"),
    ("xception", "zero_mean_unit_range"),
])
def test_every_zoo_variant_is_registered(name, preprocessing):
  variant = model_variants.get_model_variant(name)
  assert variant.preprocessing == preprocessing
  assert sorted(variant.decoder_endpoints) == [4, 8, 16]
  expected_rates = () if name.startswith("mobilenet") else (6, 12, 18)
  assert variant.default_atrous_rates == expected_rates
