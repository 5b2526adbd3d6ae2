"""Tests of the dense prediction cell (deeplab.core.modeling.heads.dense_prediction_cell)."""

import json
import os

import keras
import numpy as np
import pytest

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import import_weights
from deeplab.core.modeling.heads import dense_prediction_cell as dpc

PRESET = "dense_prediction_cell_branch5_top1_cityscapes"
_OFFICIAL_JSON = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "..", "shared",
    "official_deeplab", "research", "deeplab", "core", PRESET + ".json")


def test_preset_is_the_official_file_and_loads_by_name_or_path(tmp_path):
  by_name = dpc.load_config(PRESET)
  assert dpc.load_config(PRESET + ".json") == by_name
  path = tmp_path / "cell.json"
  path.write_text(json.dumps(by_name))
  assert dpc.load_config(str(path)) == by_name
  # The official preset: five separable 3x3 branches, branch 0 on the
  # feature, the others on branch 0 or 1 (official core/*.json).
  assert [b["input"] for b in by_name] == [-1, 0, 1, 0, 0]
  assert [b["rate"] for b in by_name] == [[1, 6], [18, 15], [6, 3], [1, 1],
                                          [6, 21]]
  if os.path.exists(_OFFICIAL_JSON):
    with open(_OFFICIAL_JSON, encoding="utf-8") as f:
      assert dpc.validate_config(json.load(f)) == by_name


@pytest.mark.parametrize("value,message", [
    ("no_such_preset", "neither a JSON file nor a preset"),
    ([{"op": "conv", "kernel": 3, "rate": [1, 1], "input": 2}],
     "earlier branch"),
    ([{"op": "deconv"}], "op in"),
    ([{"op": "conv", "kernel": [3, 1], "rate": 1}], "square"),
    ([], "non-empty"),
])
def test_bad_configs_name_the_flag(value, message):
  with pytest.raises(ValueError, match=message) as error:
    if isinstance(value, str):
      dpc.load_config(value)
    else:
      dpc.validate_config(value)
  assert "--dense_prediction_cell_json" in str(error.value)
  assert "\n" not in str(error.value)


def _cell(**kwargs):
  return dpc.DensePredictionCell(dpc.load_config(PRESET), filters=8,
                                 concat_channels=6, name="dpc", **kwargs)


def test_config_round_trip_gives_the_same_outputs():
  layer = _cell(conv_rate_multiplier=2)
  x = np.random.default_rng(0).normal(size=(2, 9, 9, 5)).astype(np.float32)
  y = layer(x)
  assert y.shape == (2, 9, 9, 6)
  # Official conv_rate_multiplier (16 // output_stride) scales the rates.
  assert layer.branch1.depthwise.dilation_rate == (36, 30)
  assert layer.branch3.depthwise.dilation_rate == (2, 2)
  clone = dpc.DensePredictionCell.from_config(layer.get_config())
  clone(x)
  clone.set_weights(layer.get_weights())
  np.testing.assert_allclose(clone(x), y, atol=1e-6)
  assert clone.get_config() == layer.get_config()


def test_branches_read_their_inputs_and_pyramid_pooling_resizes_back():
  config = [{"op": "conv", "kernel": 1, "input": -1},
            {"op": "pyramid_pooling", "grid_size": [2, 2], "input": 0}]
  layer = dpc.DensePredictionCell(config, filters=4, concat_channels=4,
                                  pool_crop_size=(129, 129), output_stride=16)
  # Official _get_pyramid_pooling_arguments: (129 - 1) / (16 * 2) + 1 = 5.
  assert layer.pyramid_pool_size(layer.branch_config[1]) == [5, 5]
  assert layer(np.ones((1, 9, 9, 3), np.float32)).shape == (1, 9, 9, 4)
  assert layer.branch1.conv.kernel.shape == (1, 1, 4, 4)  # Reads branch 0.
  with pytest.raises(ValueError, match="image_pooling_crop_size"):
    dpc.DensePredictionCell(config)


def test_model_uses_the_cell_instead_of_aspp_with_official_names():
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, aspp_filters=8,
      depth_multiplier=0.35, decoder_output_stride=None, output_stride=8,
      dense_prediction_cell_config=tuple(dpc.load_config(PRESET)))
  model = deeplab_model.build_deeplab_model(config, (33, 33, 3))
  assert model(np.zeros((1, 33, 33, 3), np.float32)).shape == (1, 33, 33, 3)
  layer = model.get_layer(deeplab_model.DPC_LAYER)
  assert layer.branch0.depthwise.dilation_rate == (2, 12)  # OS8: x2.
  names = set(import_weights.official_variable_map(model))
  # Official DensePredictionCell.build_cell scopes and epsilon.
  assert {"meta_architecture/branch0_depthwise/depthwise_weights",
          "meta_architecture/branch4_pointwise/BatchNorm/moving_variance",
          "meta_architecture/concat_projection/weights"} <= names
  assert not [n for n in names if n.startswith("aspp")]
  assert layer.branch0.depthwise_bn.epsilon == 1e-5


def test_model_config_rejects_the_cell_with_another_head():
  with pytest.raises(ValueError, match="--dense_prediction_cell_json"):
    config_lib.ModelConfig(head="lr_aspp", dense_prediction_cell_config=(
        {"op": "conv", "kernel": 1, "input": -1},))


def test_a_serialised_model_reloads(tmp_path):
  inputs = keras.Input((9, 9, 4))
  model = keras.Model(inputs, _cell()(inputs))
  path = str(tmp_path / "m.keras")
  model.save(path)
  x = np.ones((1, 9, 9, 4), np.float32)
  np.testing.assert_allclose(keras.models.load_model(path)(x), model(x),
                             atol=1e-6)
