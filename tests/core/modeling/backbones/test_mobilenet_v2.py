"""Tests of the DeepLab MobileNetV2 backbone (deeplab.core.modeling.backbones.mobilenet_v2)."""

import h5py
import keras
import numpy as np
import pytest

import backbone_test_utils as btu
from deeplab.core.modeling.backbones import mobilenet_v2

# 65 = 64 + 1 stays odd at every stride (33, 17, 9, 5, 3); 64 stays even.
ODD, EVEN = 65, 64


def _backbone(size, output_stride, depth_multiplier=1.0, outputs=None):
  inputs = keras.Input((size, size, 3))
  endpoints = mobilenet_v2.build_mobilenet_v2(
      inputs, output_stride=output_stride, depth_multiplier=depth_multiplier)
  if outputs is None:
    outputs = ("layer_4/depthwise_output", "layer_7/depthwise_output",
               "layer_14/depthwise_output", "final")
  return keras.Model(inputs, {k: endpoints[k] for k in outputs})


@pytest.mark.parametrize("size", [ODD, EVEN])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_endpoint_shapes(size, output_stride):
  model = _backbone(size, output_stride)
  shapes = {k: tuple(v.shape) for k, v in model.output.items()}

  def side(stride):  # 'SAME' strides: ceil at every halving.
    n = size
    for _ in range(int(np.log2(stride))):
      n = -(-n // 2)
    return n

  assert shapes["layer_4/depthwise_output"] == (None, side(4), side(4), 144)
  assert shapes["layer_7/depthwise_output"] == (None, side(8), side(8), 192)
  stride_14 = min(16, output_stride)
  assert shapes["layer_14/depthwise_output"] == (
      None, side(stride_14), side(stride_14), 576)
  assert shapes["final"] == (
      None, side(output_stride), side(output_stride), 320)


def test_513_feature_sizes():
  model = _backbone(513, 16, outputs=("layer_1", "layer_4", "layer_7",
                                      "final"))
  assert [model.output[k].shape[1] for k in
          ("layer_1", "layer_4", "layer_7", "final")] == [257, 129, 65, 33]


def test_dilation_rates_follow_mobilenet_base():
  # At OS16, block_13 (the dropped stride) keeps rate 1; later blocks get 2.
  model = _backbone(ODD, 16)
  rates = {i: model.get_layer(f"block_{i}_depthwise").dilation_rate[0]
           for i in (12, 13, 14, 16)}
  assert rates == {12: 1, 13: 1, 14: 2, 16: 2}
  assert model.get_layer("block_13_depthwise").strides == (1, 1)
  model = _backbone(ODD, 8)
  rates = {i: model.get_layer(f"block_{i}_depthwise").dilation_rate[0]
           for i in (5, 6, 7, 13, 14)}
  assert rates == {5: 1, 6: 1, 7: 2, 13: 2, 14: 4}


def test_depth_multiplier_rounds_to_multiples_of_one():
  model = _backbone(ODD, 16, depth_multiplier=0.5)
  filters = {name: model.get_layer(name).filters for name in (
      "Conv1", "expanded_conv_project", "block_1_expand", "block_1_project",
      "block_3_project", "block_6_project", "block_10_project",
      "block_13_project", "block_16_project")}
  # 24 -> 12 (Keras Applications' rounding to 8 would give 16).
  assert filters == {
      "Conv1": 16, "expanded_conv_project": 8, "block_1_expand": 48,
      "block_1_project": 12, "block_3_project": 16, "block_6_project": 32,
      "block_10_project": 48, "block_13_project": 80, "block_16_project": 160}
  # Expansions keep expand_input_by_factor(6)'s rounding to 8.
  assert model.get_layer("block_2_expand").filters == 72
  assert mobilenet_v2.scaled_depth(24, 0.35) == 8
  assert mobilenet_v2.scaled_depth(16, 0.35) == 6


def test_no_final_1280_conv():
  model = _backbone(ODD, 16)
  names = {layer.name for layer in model.layers}
  assert "block_16_project_BN" in names
  assert not names & {"Conv_1", "Conv_1_bn", "out_relu"}


def test_invalid_arguments():
  with pytest.raises(ValueError, match="output_stride"):
    _backbone(ODD, 4)
  with pytest.raises(ValueError, match="depth_multiplier"):
    _backbone(ODD, 16, depth_multiplier=0.0)


def test_weighted_layers_match_keras_applications():
  app = keras.applications.MobileNetV2(
      weights=None, include_top=False, alpha=1.0, input_shape=(ODD, ODD, 3))
  ours = _backbone(ODD, 32)
  app_weights = {l.name: [tuple(w.shape) for w in l.weights]
                 for l in app.layers if l.weights}
  our_weights = {l.name: [tuple(w.shape) for w in l.weights]
                 for l in ours.layers if l.weights}
  assert set(app_weights) - set(our_weights) == {"Conv_1", "Conv_1_bn"}
  assert set(our_weights) <= set(app_weights)
  for name, shapes in our_weights.items():
    assert shapes == app_weights[name], name


def test_keras_applications_weights_load_by_name(tmp_path):
  """A Keras Applications weight file loads by name and gives its features.

  The file is written in the legacy weights-only HDF5 layout of Keras'
  published ImageNet files (`layer_names` at the root).
  """
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top

  app = keras.applications.MobileNetV2(
      weights=None, include_top=False, alpha=1.0, input_shape=(ODD, ODD, 3))
  btu.randomize_batch_norm(app)
  path = str(tmp_path / "mobilenet_v2_no_top.h5")
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, app)

  ours = _backbone(ODD, 32, outputs=("final",))
  ours.load_weights(path, by_name=True)

  x = np.random.default_rng(1).uniform(-1, 1, (2, ODD, ODD, 3)).astype(
      "float32")
  expected = keras.Model(
      app.input, app.get_layer("block_16_project_BN").output)(x)
  np.testing.assert_allclose(ours(x)["final"], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size,offset_16,offset_8", [(ODD, 0, 0),
                                                     (EVEN, 1, 3)])
def test_atrous_equals_subsampled_dense_output(size, offset_16, offset_8):
  """OS16/OS8 outputs, subsampled, equal the OS32 output.

  Atrous convolution computes the strided network's values densely. With
  'SAME' padding a stride-2 conv on an odd size centres output i on input
  2i, and on an even size on 2i + 1, hence the offsets.
  """
  models = {os: _backbone(size, os, outputs=("final",)) for os in (8, 16, 32)}
  btu.randomize_batch_norm(models[32])
  weights = models[32].get_weights()
  for os in (8, 16):
    models[os].set_weights(weights)
  x = np.random.default_rng(2).uniform(-1, 1, (1, size, size, 3)).astype(
      "float32")
  out = {os: np.asarray(m(x)["final"]) for os, m in models.items()}
  tolerance = 1e-5 * np.abs(out[32]).max()
  np.testing.assert_allclose(
      out[16][:, offset_16::2, offset_16::2], out[32], rtol=0, atol=tolerance)
  np.testing.assert_allclose(
      out[8][:, offset_8::4, offset_8::4], out[32], rtol=0, atol=tolerance)


def test_endpoint_names_documented():
  inputs = keras.Input((ODD, ODD, 3))
  endpoints = mobilenet_v2.build_mobilenet_v2(inputs)
  assert set(endpoints) == set(mobilenet_v2.endpoint_names())
