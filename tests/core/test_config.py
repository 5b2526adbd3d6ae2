"""Config dataclasses: normalisation, and errors that name the flag."""

import dataclasses

import pytest

from deeplab.core import config as config_lib


def test_model_config_normalises_sequences():
  config = config_lib.ModelConfig(atrous_rates=["6", 12, 18.0],
                                  multi_grid=[1, "2", 4],
                                  image_pooling_stride=[2, 3])
  assert config.atrous_rates == (6, 12, 18)
  assert config.multi_grid == (1, 2, 4)
  assert config.image_pooling_stride == (2, 3)
  assert config_lib.ModelConfig(atrous_rates=None).atrous_rates == ()


@pytest.mark.parametrize("overrides, flag", [
    (dict(output_stride=12), "--output_stride"),
    (dict(num_classes=1), "--num_classes"),
    (dict(atrous_rates=(6, 12)), "--atrous_rates"),
    (dict(multi_grid=(1, 0, 2)), "--multi_grid"),
    (dict(head="fpn"), "--head"),
    (dict(image_pooling_crop_size=(1, 2, 3)), "--image_pooling_crop_size"),
    (dict(image_pooling_stride=(0, 1)), "--image_pooling_stride"),
    (dict(decoder_output_stride=None, decoder_output_is_logits=True),
     "--decoder_output_is_logits"),
    (dict(output_stride=8, decoder_output_stride=8),
     "--decoder_output_stride"),
])
def test_bad_model_config_names_the_flag(overrides, flag):
  with pytest.raises(ValueError, match=flag):
    config_lib.ModelConfig(**overrides)


def test_augment_params_default_to_nothing_and_validate_ranges():
  params = config_lib.AugmentParams()
  assert not params.any_photometric and not params.max_rotation_degrees
  assert config_lib.DataConfig().augment == params
  assert config_lib.AugmentParams(noise_stddev=2.).any_photometric
  for name, value in [("max_rotation_degrees", 181.),
                      ("contrast_max_delta", 1.),
                      ("blur_probability", 1.5),
                      ("gridmask_ratio", 0.)]:
    with pytest.raises(ValueError, match=f"--{name}="):
      config_lib.AugmentParams(**{name: value})
  with pytest.raises(ValueError, match="--gridmask_min_period"):
    config_lib.AugmentParams(gridmask_min_period=64, gridmask_max_period=32)
  with pytest.raises(dataclasses.FrozenInstanceError):
    params.noise_stddev = 1.  # Shared by every DataConfig default.


def test_parse_int_list_accepts_the_flag_forms_and_names_the_flag():
  assert config_lib.parse_int_list("513,513", "crop") == (513, 513)
  assert config_lib.parse_int_list(["96", "128"], "crop") == (96, 128)
  assert config_lib.parse_int_list(None, "crop") == ()
  with pytest.raises(ValueError, match="--train_crop_size expects"):
    config_lib.parse_int_list("513,x", "train_crop_size")
