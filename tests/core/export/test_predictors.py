"""Predictors of exported models: the padding of fixed-size formats comes
from the model config exported beside them."""

import pytest

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.export import predictors
from deeplab.core.modeling import layers as deeplab_layers


@pytest.mark.parametrize("variant,expected", [
    ("resnet_v1_50", deeplab_layers.IMAGENET_MEAN_RGB),
    ("xception_65", deeplab_layers.UNIT_RANGE_MEAN_RGB)])
def test_fixed_size_models_pad_with_their_variants_mean_pixel(
    tmp_path, variant, expected):
  config = config_lib.ModelConfig(model_variant=variant)
  checkpoints.write_model_config(str(tmp_path), config)
  path = str(tmp_path / "deeplab_int8.tflite")
  assert tuple(predictors.exported_mean_pixel(path)) == tuple(expected)


def test_files_exported_without_a_config_pad_as_before(tmp_path):
  path = str(tmp_path / "deeplab_int8.tflite")
  assert tuple(predictors.exported_mean_pixel(path)) == tuple(
      deeplab_layers.UNIT_RANGE_MEAN_RGB)
