"""Backbone helpers: kernel initializers, one per layer."""

import keras
import numpy as np
import pytest

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling.backbones import backbone_utils


def _conv_kernels(config):
  model = deeplab_model.build_deeplab_model(config, input_shape=(33, 33, 3))
  return {w.path: w.numpy() for w in model.weights
          if w.path.endswith("kernel") and len(w.shape) == 4}


def _config(variant, **overrides):
  return config_lib.ModelConfig(
      model_variant=variant, num_classes=3, output_stride=16,
      depth_multiplier=0.35, aspp_filters=16, decoder_filters=16,
      low_level_filters=8, **overrides)


def test_initializer_factory_seeds_every_initializer_anew():
  new = backbone_utils.initializer_factory(
      None, keras.initializers.TruncatedNormal(stddev=0.09))
  a = np.asarray(new()((3, 3, 16, 16)))
  b = np.asarray(new()((3, 3, 16, 16)))
  assert not np.allclose(a, b)
  # A truncated normal at 2 sigma keeps about 0.88 of the stddev.
  assert 0.06 < a.std() < 0.1
  by_name = backbone_utils.initializer_factory("he_normal", None)()
  assert isinstance(by_name, keras.initializers.HeNormal)


# One initializer instance shared by several layers gave every kernel of
# the same shape the same initial values (Keras 3 fixes an unseeded
# initializer's seed when it is built).
@pytest.mark.parametrize("variant", ["mobilenet_v2", "mobilenet_v3_small_seg",
                                     "xception_41", "resnet_v1_50"])
def test_no_two_backbone_kernels_start_identical(variant):
  kernels = _conv_kernels(_config(variant))
  seen = {}
  for path, value in kernels.items():
    key = (value.shape, value.tobytes())
    assert key not in seen, f"{path} starts equal to {seen[key]}"
    seen[key] = path


def test_backbone_initializer_replaces_the_official_one():
  # block_16_project: 1x1 conv from 576 * 0.35 -> 336 channels.
  name = "block_16_project/kernel"
  official = _conv_kernels(_config("mobilenet_v2"))[name]
  scaled = _conv_kernels(_config("mobilenet_v2",
                                 backbone_initializer="variance_scaling"))
  fan_in = official.shape[2]
  assert fan_in == 336
  assert official.std() == pytest.approx(0.09 * 0.88, rel=0.1)
  assert scaled[name].std() == pytest.approx(fan_in ** -0.5, rel=0.1)
