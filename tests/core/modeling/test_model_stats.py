"""Tests of parameter and multiply-add counting (deeplab.core.modeling.model_stats)."""

import json
import subprocess
import sys

import keras
import pytest

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import model_stats


def test_counts_each_layer_kind_exactly():
  inputs = keras.Input((None, None, 3))
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)  # 5x5 out
  x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2)(x)
  x = keras.layers.SeparableConv2D(4, 3, padding="valid")(x)  # 3x3 out
  x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Dense(10)(x)
  model = keras.Model(inputs, x)
  counts = [r.madds for r in model_stats.layer_madds(model, (9, 10))]
  assert counts == [
      5 * 5 * 9 * 3 * 8,             # conv: out * k*k * cin * cout
      5 * 5 * 9 * 8,                 # depthwise: out * k*k * c
      3 * 3 * 9 * 8 + 3 * 3 * 8 * 4,  # separable: depthwise + pointwise
      4 * 10]                        # dense
  stats = model_stats.model_stats(model, (9, 10))
  assert stats == {"params": model.count_params(), "madds": sum(counts)}


def test_nested_layers_are_counted():
  config = config_lib.ModelConfig(num_classes=3, atrous_rates=(6, 12, 18),
                                  decoder_output_stride=4)
  model = deeplab_model.build_deeplab_model(config)
  names = {r.name for r in model_stats.layer_madds(model, (65, 65))}
  # Image pooling, ASPP branches, projection, decoder and logits.
  assert {"conv", "depthwise", "pointwise", "logits", "Conv1"} <= names


# Official model zoo figures (multiply-adds at 513x513, OS16).
@pytest.mark.parametrize("overrides,zoo_madds", [
    (dict(model_variant="mobilenet_v2", decoder_output_stride=None), 2.75e9),
    (dict(model_variant="mobilenet_v2", decoder_output_stride=None,
          depth_multiplier=0.5), 0.88e9),
    (dict(model_variant="xception_65", atrous_rates=(6, 12, 18),
          decoder_output_stride=4), 54.17e9),
])
def test_reproduces_model_zoo_compute(overrides, zoo_madds):
  config = config_lib.ModelConfig(num_classes=21, output_stride=16,
                                  **overrides)
  model = deeplab_model.build_deeplab_model(config, input_shape=(513, 513, 3))
  madds = model_stats.model_stats(model, (513, 513))["madds"]
  assert abs(madds / zoo_madds - 1) < 0.02, madds


def test_cli_prints_json():
  result = subprocess.run(
      [sys.executable, "-m", "deeplab.core.model_stats",
       "--model_variant=mobilenet_v2", "--output_stride=16",
       "--crop_size=65,65", "--num_classes=5", "--depth_multiplier=0.5",
       "--json"], capture_output=True, text=True, check=True)
  stats = json.loads(result.stdout.strip().splitlines()[-1])
  config = config_lib.ModelConfig(num_classes=5, depth_multiplier=0.5,
                                  decoder_output_stride=None)
  model = deeplab_model.build_deeplab_model(config, input_shape=(65, 65, 3))
  assert stats == model_stats.model_stats(model, (65, 65))
