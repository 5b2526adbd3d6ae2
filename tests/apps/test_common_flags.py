"""Shared flags: each reaches its config field, bad values name the flag."""

import contextlib
import dataclasses

from absl import flags
import pytest

from deeplab import common_flags
from deeplab.core import config as config_lib
from deeplab.datasets import data_descriptors

FLAGS = flags.FLAGS


@contextlib.contextmanager
def _parsed(argv):
  """Parses `argv` into the global flags, and resets them afterwards."""
  FLAGS.unparse_flags()
  FLAGS(["prog"] + list(argv))
  try:
    yield
  finally:
    FLAGS.unparse_flags()


def test_model_flags_reach_the_config():
  argv = ["--model_variant=mobilenet_v3_large_seg", "--output_stride=32",
          "--image_pooling_crop_size=769,769", "--image_pooling_stride=4,5",
          "--aspp_convs_filters=128",
          "--noaspp_with_concat_projection",
          "--aspp_with_squeeze_and_excitation", "--image_se_uses_qsigmoid",
          "--decoder_use_sum_merge", "--decoder_output_is_logits",
          "--decoder_output_stride=8", "--multi_grid=1", "--multi_grid=2",
          "--multi_grid=4", "--quant_friendly", "--boundary_refinement",
          '--aspp_branches=[{"type": "conv"}]', "--use_bounded_activation"]
  with _parsed(argv):
    config = common_flags.model_config_from_flags(num_classes=19)
  assert config.image_pooling_crop_size == (769, 769)
  assert config.image_pooling_stride == (4, 5)
  assert config.aspp_filters == 128 and config.multi_grid == (1, 2, 4)
  assert not config.aspp_with_concat_projection
  assert (config.aspp_with_squeeze_and_excitation and
          config.image_se_uses_qsigmoid and config.decoder_use_sum_merge and
          config.decoder_output_is_logits and config.quant_friendly and
          config.boundary_refinement and config.use_bounded_activation)
  assert config.aspp_branches[0]["type"] == "conv"


def test_official_prediction_flags_reach_the_config_and_beat_a_checkpoint(
    tmp_path):
  """prediction_with_upsampled_logits, image_pyramid and merge_method (how
  a model predicts) travel in model_config.json, and an explicit flag
  replaces the saved value instead of contradicting it."""
  from deeplab.core import checkpoints  # pylint: disable=g-import-not-at-top
  argv = ["--noprediction_with_upsampled_logits", "--image_pyramid=0.5",
          "--image_pyramid=1", "--merge_method=avg"]
  with _parsed(argv):
    config = common_flags.model_config_from_flags(num_classes=21)
  assert not config.prediction_with_upsampled_logits
  assert config.image_pyramid == (0.5, 1.0) and config.merge_method == "avg"
  with _parsed([]):
    assert common_flags.model_config_from_flags(21).image_pyramid is None
  checkpoints.write_model_config(str(tmp_path), config)
  with _parsed([]):  # Read from the checkpoint.
    assert common_flags.model_config_for_checkpoint(
        str(tmp_path), 21, "checkpoint_dir") == config
  with _parsed(["--prediction_with_upsampled_logits", "--merge_method=max",
                "--image_pyramid=1"]):
    loaded = common_flags.model_config_for_checkpoint(
        str(tmp_path), 21, "checkpoint_dir")
  assert loaded == dataclasses.replace(
      config, prediction_with_upsampled_logits=True, merge_method="max",
      image_pyramid=(1.0,))
  with _parsed(["--image_pyramid=0"]):
    with pytest.raises(ValueError, match="--image_pyramid expects"):
      common_flags.model_config_from_flags(num_classes=21)


def test_prediction_flags_with_an_export_are_reported(caplog):
  with _parsed(["--merge_method=avg"]):
    common_flags.warn_prediction_flags_for_exports()
  assert ("--merge_method: for checkpoints and export_model.py only" in
          caplog.text)
  caplog.clear()
  with _parsed([]):
    common_flags.warn_prediction_flags_for_exports()
  assert not caplog.text


def test_augmentation_flags_reach_augment_params():
  with _parsed(["--max_rotation_degrees=15", "--hue_max_delta=0.1",
                "--gridmask_probability=0.3", "--gridmask_min_period=16"]):
    params = common_flags.augment_params_from_flags()
  assert params == config_lib.AugmentParams(
      max_rotation_degrees=15., hue_max_delta=0.1, gridmask_probability=0.3,
      gridmask_min_period=16)
  with _parsed(["--saturation_max_delta=2"]):
    with pytest.raises(ValueError, match=r"--saturation_max_delta must be "
                       r"in \[0, 1\), got 2"):
      common_flags.augment_params_from_flags()


def test_crop_size_flag_takes_two_positive_integers():
  assert common_flags.crop_size_from_flag("321,513", "train_crop_size") == (
      321, 513)
  for bad in ("513", "0,513", "a,b"):
    with pytest.raises(ValueError, match="--train_crop_size expects"):
      common_flags.crop_size_from_flag(bad, "train_crop_size")


def test_custom_dataset_needs_num_classes():
  with _parsed(["--dataset=custom"]):
    with pytest.raises(flags.ValidationError, match="--num_classes"):
      common_flags.dataset_descriptor_from_flags()
  with _parsed(["--dataset=custom", "--num_classes=7"]):
    descriptor = common_flags.dataset_descriptor_from_flags()
  assert descriptor.num_classes == 7 and descriptor.ignore_label == 255
  with _parsed(["--dataset=cityscapes"]):
    assert (common_flags.dataset_descriptor_from_flags() ==
            data_descriptors.get_dataset_descriptor("cityscapes"))


def test_backbone_initializer_flag_is_checked_against_keras_names():
  with _parsed(["--backbone_initializer=variance_scaling"]):
    config = common_flags.model_config_from_flags(num_classes=5)
  assert config.backbone_initializer == "variance_scaling"
  with _parsed(["--backbone_initializer=fan_in_please"]):
    with pytest.raises(ValueError,
                       match="--backbone_initializer='fan_in_please'"):
      common_flags.model_config_from_flags(num_classes=5)


def test_nas_and_dense_prediction_cell_flags_reach_the_config(tmp_path):
  from deeplab.core import checkpoints  # pylint: disable=g-import-not-at-top
  argv = ["--model_variant=nas_hnasnet", "--output_stride=8",
          "--nas_stem_output_num_conv_filters=12",
          "--nas_use_classification_head", "--nas_remove_os32_stride",
          "--drop_path_keep_prob=0.7",
          "--dense_prediction_cell_json="
          "dense_prediction_cell_branch5_top1_cityscapes"]
  with _parsed(argv):
    config = common_flags.model_config_from_flags(num_classes=19)
  assert (config.nas_stem_output_num_conv_filters,
          config.nas_use_classification_head, config.nas_remove_os32_stride,
          config.drop_path_keep_prob) == (12, True, True, 0.7)
  assert len(config.dense_prediction_cell_config) == 5
  # The parsed cell travels in model_config.json and reads back equal.
  checkpoints.write_model_config(str(tmp_path), config)
  assert checkpoints.read_model_config(str(tmp_path / "ckpt-1")) == config
  with _parsed(["--dense_prediction_cell_json=nope"]):
    with pytest.raises(ValueError, match="--dense_prediction_cell_json"):
      common_flags.model_config_from_flags(num_classes=19)
  with pytest.raises(ValueError, match="--drop_path_keep_prob"):
    config_lib.ModelConfig(drop_path_keep_prob=0.)
