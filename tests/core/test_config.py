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
  assert config_lib.ModelConfig(image_pyramid=[1, "0.5"]).image_pyramid == (
      1.0, 0.5)
  assert config_lib.ModelConfig(image_pyramid=[]).image_pyramid is None


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
    (dict(image_pyramid=(0.5, 0.0)), "--image_pyramid"),
    (dict(image_pyramid=(1.0, 1.0)), "--image_pyramid"),
    (dict(image_pyramid=("x",)), "--image_pyramid"),
    (dict(merge_method="sum"), "--merge_method"),
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
    with pytest.raises(ValueError, match=f"--{name} must be .*, got"):
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


@pytest.mark.parametrize("make, message", [
    (lambda: config_lib.ScheduleConfig(base_learning_rate=-1),
     "--base_learning_rate must be >= 0, got -1."),
    (lambda: config_lib.DataConfig(batch_size=-4),
     "--train_batch_size must be positive, got -4."),
    (lambda: config_lib.DataConfig(batch_size=0, is_training=False),
     "--eval_batch_size must be positive, got 0."),
    (lambda: config_lib.DataConfig(crop_size=(0, 65)),
     "--train_crop_size must be two positive integers"),
    (lambda: config_lib.DataConfig(resize_factor=0),
     "--resize_factor must be positive, got 0."),
    (lambda: config_lib.DataConfig(min_scale_factor=2.0, max_scale_factor=1.0),
     "--max_scale_factor must be >= --min_scale_factor"),
    (lambda: config_lib.ModelConfig(aspp_filters=0),
     "--aspp_convs_filters must be positive, got 0."),
    (lambda: config_lib.ModelConfig(batch_norm_momentum=1.0),
     "--batch_norm_decay must be in"),
    (lambda: config_lib.ModelConfig(depth_multiplier=0),
     "--depth_multiplier must be positive"),
    (lambda: config_lib.OptimizerConfig(optimizer="lamb"),
     "--optimizer must be one of 'momentum'"),
    (lambda: config_lib.ScheduleConfig(learning_policy="piecewise",
                                       learning_rate_boundaries=(10,),
                                       learning_rate_values=(0.1,)),
     "--learning_policy=piecewise needs"),
    (lambda: config_lib.LossConfig(top_k_percent_pixels=0.0),
     "--top_k_percent_pixels must be in"),
    (lambda: config_lib.LossConfig(label_smoothing=1.0), "--label_smoothing"),
    (lambda: config_lib.LossConfig(focal_gamma=-1.0), "--focal_gamma"),
    (lambda: config_lib.LossConfig(class_weighting="inverse"),
     "--class_weighting must be one of"),
    (lambda: config_lib.CheckpointConfig(save_interval_steps=0),
     "--save_interval_steps must be positive"),
    (lambda: config_lib.TransferConfig(freeze_level="head"),
     "--freeze_level must be one of"),
    (lambda: config_lib.DistributionConfig(mixed_precision="float8"),
     "--mixed_precision must be one of"),
    (lambda: config_lib.TrainConfig(training_number_of_steps=0),
     "--training_number_of_steps must be positive"),
])
def test_configs_validate_themselves_naming_the_flag(make, message):
  with pytest.raises(ValueError) as error:
    make()
  assert str(error.value).startswith(message), str(error.value)
  assert "\n" not in str(error.value)


def test_train_config_from_flat_routes_each_field_to_its_part():
  config = config_lib.TrainConfig.from_flat(
      training_number_of_steps=7, optimizer="adam", base_learning_rate=0.5,
      label_weights=[1, 2], train_logdir="/runs", freeze_level="backbone",
      mixed_precision="bfloat16")
  assert config.training_number_of_steps == 7
  assert config.optimizer == config_lib.OptimizerConfig(optimizer="adam")
  assert config.schedule.base_learning_rate == 0.5
  assert config.loss.label_weights == (1.0, 2.0)
  assert config.checkpoint.train_logdir == "/runs"
  assert config.transfer.freeze_level == "backbone"
  assert config.distribution.mixed_precision == "bfloat16"
  with pytest.raises(TypeError, match="learning_rate"):
    config_lib.TrainConfig.from_flat(learning_rate=0.1)
  # Every leaf field is one train.py flag: no name is used twice.
  names = config_lib.TrainConfig.flat_field_names()
  assert len(names) == len(set(names))


def test_official_weight_decay_defaults():
  assert config_lib.default_weight_decay("xception_65") == 4e-5
  assert config_lib.default_weight_decay("mobilenet_v2") == 4e-5
  assert config_lib.default_weight_decay("resnet_v1_50_beta") == 1e-4


def test_profile_steps_must_be_an_ordered_window():
  with pytest.raises(ValueError, match="--profile_steps"):
    config_lib.CheckpointConfig(profile_steps=(3, 2))
  assert config_lib.CheckpointConfig(profile_steps=[2, 4]).profile_steps == (
      2, 4)
