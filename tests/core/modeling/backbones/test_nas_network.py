"""Tests of the NAS backbones (deeplab.core.modeling.backbones.nas_network,
nas_cell): official strides, channels, scopes, options and drop path.

Logit parity with the official graph is in bench/official_parity.py
(configurations nas_*), which runs official nas_network.py.
"""

import functools

import keras
import numpy as np
import pytest

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import import_weights
from deeplab.core.modeling import model_variants
from deeplab.core.modeling.backbones import nas_cell
from deeplab.core.modeling.backbones import nas_network

SIZE = 33  # Odd at every stride: 17, 9, 5, 3.
_SIDE = {2: 17, 4: 9, 8: 5, 16: 3, 32: 2}


@functools.lru_cache(maxsize=None)
def _endpoints(name, output_stride, filters=4, **options):
  config = config_lib.ModelConfig(
      model_variant=name, output_stride=output_stride,
      nas_stem_output_num_conv_filters=filters,
      decoder_output_stride=None, **options)
  inputs = keras.Input((SIZE, SIZE, 3))
  endpoints = model_variants.get_model_variant(name).backbone_builder(
      inputs, config)
  return keras.Model(inputs, endpoints), endpoints


def _pnasnet():
  """PNASNet at output stride 16, with drop path (one build for all)."""
  return _endpoints("nas_pnasnet", 16, drop_path_keep_prob=0.8,
                    drop_path_total_steps=10)


def test_cell_strides_follow_the_official_backbone_lists():
  # Official _build_nas_base on hnasnet's [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2,
  # 1]: a step up strides and doubles filters, a step down upsamples.
  plan = nas_cell.cell_strides(nas_network.HNASNET_BACKBONE, False)
  assert [s for s, _, _ in plan] == [1, 1, 1, 2, 2, 1, 2, 1, 2, 1, 1, 1]
  assert [i for i, (_, r, _) in enumerate(plan) if r == "up"] == [5, 10, 11]
  assert [f for _, _, f in plan] == [1, 1, 1, 2, 4, 2, 4, 4, 8, 8, 4, 2]
  removed = nas_cell.cell_strides(nas_network.HNASNET_BACKBONE, True)
  assert removed[8][0] == 1 and removed[10][1] is None
  assert removed[8][2] == 8  # Filters still double (official).
  pnas = nas_cell.cell_strides(nas_network.PNASNET_BACKBONES[16], False)
  assert [s for s, _, _ in pnas] == [2, 1, 1, 1, 2] + [1] * 7


def test_pnasnet_endpoints_have_official_strides_and_channels():
  _, endpoints = _pnasnet()
  strides = {"Stem": 4, "Cell_0": 8, "Cell_3": 8, "Cell_4": 16,
             "Cell_11": 16, "final": 16}
  for endpoint, stride in strides.items():
    assert endpoints[endpoint].shape[1] == _SIDE[stride], endpoint
  assert endpoints["Stem"].shape[-1] == 128
  # Cells output 5 * filters * 2**level channels (filters=4 here).
  assert endpoints["Cell_3"].shape[-1] == 5 * 4 * 2
  assert endpoints["final"].shape[-1] == 5 * 4 * 4
  _check_decoder_endpoints("nas_pnasnet", endpoints)


def _check_decoder_endpoints(name, endpoints):
  variant = model_variants.get_model_variant(name)
  for stride, endpoint in variant.decoder_endpoints.items():
    assert endpoints[endpoint].shape[1] == _SIDE[stride], endpoint
  # The auxiliary head's endpoint: stride 16, 5 * 4 * filters channels.
  assert endpoints[variant.aux_endpoint].shape[1:] == (_SIDE[16], _SIDE[16],
                                                       5 * 4 * 4)


def test_hnasnet_follows_its_searched_path_and_head_reaches_the_stride():
  model, endpoints = _endpoints("nas_hnasnet", 16,
                                nas_use_classification_head=True)
  strides = {"Cell_2": 4, "Cell_3": 8, "Cell_4": 16, "Cell_5": 8,
             "Cell_8": 32, "Cell_10": 16, "Cell_11": 8}
  for endpoint, stride in strides.items():
    assert endpoints[endpoint].shape[1] == _SIDE[stride], endpoint
  assert endpoints["Cell_11"].shape[-1] == 5 * 4 * 2
  _check_decoder_endpoints("nas_hnasnet", endpoints)
  assert endpoints["downsample_os16"].shape[1:] == (3, 3, 512)
  # Past the output stride the head goes atrous (official rate *= 2).
  assert endpoints["downsample_os32"].shape[1:] == (3, 3, 1024)
  assert model.get_layer("hnasnet.downsample_os32_conv").dilation_rate == (
      2, 2)
  assert endpoints["final"].shape[1:] == (3, 3, 2048)
  assert nas_network.feature_stride("nas_hnasnet", 8) == 8


@pytest.mark.parametrize("name,output_stride,options", [
    ("nas_hnasnet", 16, {}),
    ("nas_pnasnet", 32, {"nas_remove_os32_stride": True}),
])
def test_options_giving_another_stride_are_rejected(name, output_stride,
                                                    options):
  config = config_lib.ModelConfig(model_variant=name,
                                  output_stride=output_stride, **options)
  with pytest.raises(ValueError, match="gives features at stride 8|16"):
    model_variants.get_model_variant(name).backbone_builder(
        keras.Input((SIZE, SIZE, 3)), config)


def test_variables_map_to_official_scopes_one_to_one():
  model, _ = _pnasnet()
  mapping = import_weights.official_variable_map(model)
  assert len(mapping) == len([w for w in model.weights
                              if not w.path.endswith("drop_path/step")])
  # Official nas_cell / nas_network scopes (slim separable conv: both
  # kernels in one scope; batch norms named without /BatchNorm).
  assert {"pnasnet/conv0/weights", "pnasnet/conv1_bn/moving_mean",
          "pnasnet/cell_0/prev_1x1/weights", "pnasnet/cell_0/beginning_bn/beta",
          "pnasnet/cell_0/comb_iter_0/left/separable_5x5_1/depthwise_weights",
          "pnasnet/cell_0/comb_iter_0/left/separable_5x5_2/pointwise_weights",
          "pnasnet/cell_4/comb_iter_4/right/1x1/weights",
          "pnasnet/cell_4/comb_iter_4/right/bn_1/gamma"} <= set(mapping)
  assert model.get_layer("pnasnet.conv0_bn").epsilon == 1e-3


def test_drop_path_schedule_and_masks():
  # Official _apply_drop_path: depth-scaled keep probability, reached
  # linearly over total_training_steps.
  assert nas_cell.DropPath.for_cell(0.7, 11, 12) == pytest.approx(0.7)
  assert nas_cell.DropPath.for_cell(0.7, 5, 12) == pytest.approx(0.85)
  layer = nas_cell.DropPath(0.5, total_training_steps=4)
  x = np.ones((64, 2, 2, 3), np.float32)
  np.testing.assert_array_equal(layer(x, training=False), x)
  assert float(layer.current_keep_prob()) == 1.0
  np.testing.assert_array_equal(layer(x, training=True), x)  # Step 0.
  layer.step.assign(4.0)
  y = np.asarray(layer(x, training=True))
  per_example = y.reshape(64, -1)
  assert set(np.unique(per_example)) <= {0.0, 2.0}
  assert (per_example == per_example[:, :1]).all()  # Whole paths dropped.
  assert 5 < (per_example[:, 0] == 0).sum() < 59
  assert int(layer.step) == 5
  clone = nas_cell.DropPath.from_config(layer.get_config())
  assert (clone.keep_prob, clone.total_training_steps) == (0.5, 4)


def test_drop_path_is_built_for_training_only_and_not_imported():
  model, _ = _pnasnet()
  drop = [l for l in model.layers if isinstance(l, nas_cell.DropPath)]
  # Every operation but `none` (9 of 10 per cell), 12 cells.
  assert len(drop) == 9 * 12
  assert drop[0].keep_prob == pytest.approx(1 - 0.2 / 12)
  assert drop[-1].keep_prob == pytest.approx(0.8)
  mapping = import_weights.official_variable_map(model)
  assert len(mapping) == len(model.weights) - len(drop)
  assert not [n for n in mapping if "drop_path" in n]
  model(np.zeros((2, SIZE, SIZE, 3), np.float32), training=True)
  assert int(drop[0].step) == 1
  # Evaluation, export and inference build without it.
  assert checkpoints.inference_model_config(config_lib.ModelConfig(
      drop_path_keep_prob=0.8)).drop_path_keep_prob == 1.0


def test_scale_resize_follows_official_scale_dimension():
  layer = nas_cell.ScaleResize(0.5)
  assert layer(np.zeros((1, 9, 10, 2), np.float32)).shape == (1, 5, 5, 2)
  up = nas_cell.ScaleResize.from_config(nas_cell.ScaleResize(2.0).get_config())
  assert up(np.zeros((1, 5, 4, 2), np.float32)).shape == (1, 9, 7, 2)
