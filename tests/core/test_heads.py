"""Tests of the head options: ASPP windows / SE gate / JSON branches
(deeplab.core.modeling.heads.aspp), sum-merge decoder (deeplab.core.modeling.heads.decoder), LR-ASPP
(deeplab.core.modeling.heads.lr_aspp), boundary refinement, quant_friendly and bounded
activation in full models (deeplab.core.modeling.deeplab_model)."""

import json

import keras
import numpy as np
import pytest

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers
from deeplab.core.modeling.heads import aspp as aspp_lib
from deeplab.core.modeling.heads import boundary_refinement
from deeplab.core.modeling.heads import decoder as decoder_lib
from deeplab.core.modeling.heads import lr_aspp


def _x(size=9, channels=8, seed=0):
  return np.random.default_rng(seed).normal(
      size=(2, size, size, channels)).astype("float32")


def _round_trip(layer, inputs):
  y = layer(inputs)
  clone = type(layer).from_config(layer.get_config())
  clone(inputs)
  clone.set_weights(layer.get_weights())
  np.testing.assert_allclose(clone(inputs), y, atol=1e-5)
  assert clone.get_config() == layer.get_config()
  return y


def test_image_pooling_window_and_stride():
  # Official: a 769 crop at OS32 pools 25x25 windows; here 5x5, stride 2.
  aspp = aspp_lib.ASPP(filters=4, pool_size=(5, 5), pool_stride=(2, 2))
  x = _x(9)
  y = _round_trip(aspp, x)
  assert y.shape == (2, 9, 9, 4)
  pooled = aspp._pool(x)  # pylint: disable=protected-access
  assert pooled.shape == (2, 3, 3, 8)
  np.testing.assert_allclose(pooled[:, 1, 2], x[:, 2:7, 4:9].mean((1, 2)),
                             atol=1e-5)


def test_squeeze_and_excitation_gate_without_projection():
  aspp = aspp_lib.ASPP(filters=4, concat_projection=False,
                       squeeze_and_excitation=True, se_uses_qsigmoid=True)
  x = _x()
  y = _round_trip(aspp, x).numpy()
  assert not hasattr(aspp, "projection")
  gate_conv = aspp.image_pooling_conv
  assert isinstance(gate_conv, keras.layers.Conv2D) and gate_conv.use_bias
  # Output = aspp0 branch * hard-sigmoid gate of the pooled feature.
  gate = layers.hard_sigmoid(gate_conv.convolution_op(
      x.mean((1, 2), keepdims=True), gate_conv.kernel) + gate_conv.bias)
  np.testing.assert_allclose(y, aspp.conv_1x1(x) * gate, atol=1e-5)
  with pytest.raises(ValueError, match="as many channels"):
    aspp_lib.ASPP(filters=4, atrous_rates=(1, 2, 3), concat_projection=False,
                  squeeze_and_excitation=True)


def test_json_branches(tmp_path):
  spec = [{"type": "pooling"}, {"type": "conv"},
          {"type": "separable", "rate": 2},
          {"type": "conv", "kernel_size": 3, "rate": 3, "filters": 6,
           "name": "wide"}]
  path = tmp_path / "aspp.json"
  path.write_text(json.dumps(spec))
  branches = aspp_lib.parse_branches(str(path))
  assert branches == aspp_lib.parse_branches(json.dumps(spec))
  aspp = aspp_lib.ASPP(filters=4, branches=branches)
  _round_trip(aspp, _x())
  assert aspp.num_branches == 4
  wide = aspp.atrous_convs[-1]
  assert wide.name == "wide" and wide.conv.kernel.shape == (3, 3, 8, 6)
  assert wide.conv.dilation_rate == (3, 3)
  assert aspp.projection.conv.kernel.shape == (1, 1, 4 + 4 + 4 + 6, 4)
  for bad, match in [("[", "not valid JSON"), ('[{"type": "max"}]', "type"),
                     ('[{"type": "conv", "size": 3}]', "unknown keys"),
                     ('[{"type": "pooling"}, {"type": "pooling"}]',
                      "one pooling")]:
    with pytest.raises(ValueError, match=match):
      aspp_lib.parse_branches(bad)


def test_sum_merge_decoder_outputs_logits():
  decoder = decoder_lib.DeepLabV3PlusDecoder(filters=5, output_is_logits=True)
  encoder, low = _x(5, 8), _x(9, 6, seed=1)
  y = _round_trip(decoder, [encoder, low]).numpy()
  assert y.shape == (2, 9, 9, 5)
  expected = (decoder.conv0(decoder.resize([encoder, low])) +
              decoder.feature_projection(low))
  np.testing.assert_allclose(y, expected, atol=1e-5)
  summed = decoder_lib.DeepLabV3PlusDecoder(filters=4, sum_merge=True)
  assert _round_trip(summed, [encoder, low]).shape == (2, 9, 9, 4)
  assert summed.conv0.name == "decoder_split_sep_conv0"
  assert summed.feature_projection.filters == 4


def test_lr_aspp():
  head = lr_aspp.LRASPP(num_classes=3, filters=4, pool_size=(3, 3),
                        pool_stride=(2, 2))
  y = _round_trip(head, [_x(5, 8), _x(9, 6, seed=1)])
  assert y.shape == (2, 9, 9, 3)


def test_boundary_refinement_starts_as_identity():
  layer = boundary_refinement.BoundaryRefinement(name="br")
  x = _x(7, 3)
  np.testing.assert_allclose(layer(x), x, atol=1e-6)
  layer.conv2.kernel.assign(np.ones(layer.conv2.kernel.shape) * 0.1)
  assert not np.allclose(_round_trip(layer, x), x)


def _model(**overrides):
  config = config_lib.ModelConfig(num_classes=3, aspp_filters=8,
                                  decoder_filters=8, low_level_filters=4,
                                  **overrides)
  return deeplab_model.build_deeplab_model(config, input_shape=(65, 65, 3))


def test_mobilenet_v3_official_head_config():
  # The official Cityscapes MobileNetV3 flags (at a small crop).
  model = _model(model_variant="mobilenet_v3_small_seg", output_stride=32,
                 image_pooling_crop_size=(65, 65), image_pooling_stride=(1, 1),
                 aspp_with_concat_projection=False,
                 aspp_with_squeeze_and_excitation=True,
                 image_se_uses_qsigmoid=True, decoder_use_sum_merge=True,
                 decoder_output_is_logits=True, decoder_output_stride=16)
  names = [l.name for l in model.layers]
  assert "logits" not in names and names[-2:] == ["decoder", "upsample_logits"]
  assert model.get_layer("aspp").pool_size == (3, 3)  # (65 - 1) // 32 + 1
  assert model(np.zeros((1, 65, 65, 3))).shape == (1, 65, 65, 3)


def test_lr_aspp_head_and_boundary_refinement_in_model():
  model = _model(model_variant="mobilenet_v3_large_seg", head="lr_aspp",
                 decoder_output_stride=None, boundary_refinement=True)
  head = model.get_layer(deeplab_model.LOGITS_LAYER)
  assert isinstance(head, lr_aspp.LRASPP)
  assert deeplab_model.REFINEMENT_LAYER in deeplab_model.LAST_LAYERS
  assert model.get_layer(deeplab_model.REFINEMENT_LAYER)
  assert model(np.zeros((1, 65, 65, 3))).shape == (1, 65, 65, 3)
  clone = keras.Model.from_config(model.get_config())
  assert clone.count_params() == model.count_params()


def test_quant_friendly_and_bounded_activation():
  model = _model(quant_friendly=True, atrous_rates=(1, 2, 3),
                 decoder_output_stride=4)
  names = {l.name for l in model.layers}
  assert "block_1_depthwise_BN" not in names
  assert model.get_layer("block_1_depthwise").use_bias
  assert model.get_layer("block_1_expand_relu").max_value is None
  assert not hasattr(model.get_layer("aspp").atrous_convs[0], "depthwise_bn")
  assert model(np.zeros((1, 65, 65, 3))).shape == (1, 65, 65, 3)

  model = _model(model_variant="resnet_v1_50", use_bounded_activation=True,
                 atrous_rates=(1, 2, 3))
  assert model.get_layer("resnet_v1_50.conv1.Relu").max_value == 6.0
  assert model.get_layer("aspp").projection.activation == "relu6"
  # relu6 bounds the ASPP output.
  aspp = layers.ConvBNReLU(4, activation="relu6")
  assert float(np.max(aspp(_x() * 100))) <= 6.0


@pytest.mark.parametrize("overrides", [
    dict(model_variant="mobilenet_v3_small_seg", head="lr_aspp",
         decoder_output_stride=None, boundary_refinement=True),
    dict(aspp_branches=tuple(aspp_lib.parse_branches(
        '[{"type": "pooling"}, {"type": "separable", "rate": 2}]')),
         decoder_output_stride=8, decoder_use_sum_merge=True,
         aspp_with_squeeze_and_excitation=True),
])
def test_checkpoint_restores_every_head_weight(overrides, tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from testing_utils import randomize_weights  # pylint: disable=g-import-not-at-top
  original = randomize_weights(_model(**overrides))
  path = tf.train.Checkpoint(model=original).save(str(tmp_path / "ckpt"))
  restored = _model(**overrides)
  tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
  for want, got in zip(original.weights, restored.weights):
    np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
