"""core/checkpoints: one resolve, one restore, the model config beside it."""

import dataclasses
import json
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from testing_utils import randomize_weights


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A train_logdir-like folder: ckpt-3 and ckpt-5 of a tiny model with
  random weights. Returns (folder, config, weights by path)."""
  folder = tmp_path_factory.mktemp("run")
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, decoder_output_stride=4,
      depth_multiplier=0.35, aspp_filters=16, decoder_filters=16,
      low_level_filters=8, batch_norm_momentum=0.9)
  model = randomize_weights(deeplab_model.build_deeplab_model(config))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       str(folder), max_to_keep=5)
  manager.save(checkpoint_number=3)
  manager.save(checkpoint_number=5)
  return folder, config, {w.path: w.numpy() for w in model.weights}


def test_resolve_prefix_folder_and_tarball(saved, tmp_path):
  folder, _, _ = saved
  latest = str(folder / "ckpt-5")
  assert checkpoints.resolve_checkpoint(str(folder)) == latest
  assert checkpoints.resolve_checkpoint(str(folder / "ckpt-3")) == str(
      folder / "ckpt-3")
  assert checkpoints.step_of_checkpoint(latest) == 5
  # A model-zoo folder has no `checkpoint` file; a tarball holds one.
  zoo = tmp_path / "zoo" / "model"
  zoo.mkdir(parents=True)
  for name in os.listdir(folder):
    if name.startswith("ckpt-5."):
      os.link(folder / name, zoo / name.replace("ckpt-5", "model.ckpt"))
  assert checkpoints.resolve_checkpoint(str(tmp_path / "zoo")) == str(
      zoo / "model.ckpt")
  tarball = tmp_path / "zoo.tar.gz"
  with tarfile.open(tarball, "w:gz") as tar:
    tar.add(zoo, arcname="model")
  extracted = checkpoints.resolve_checkpoint(
      str(tarball), workdir=str(tmp_path / "x"))
  assert extracted == str(tmp_path / "x" / "model" / "model.ckpt")


def test_resolve_errors_name_the_flag_and_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="--source .*nothing"):
    checkpoints.resolve_checkpoint(str(tmp_path / "nothing"), "source")
  with pytest.raises(FileNotFoundError, match=r"--checkpoint_dir .*\*\.index"):
    checkpoints.resolve_checkpoint(str(tmp_path), "checkpoint_dir")
  with pytest.raises(FileNotFoundError, match="tarball not found"):
    checkpoints.resolve_checkpoint(str(tmp_path / "zoo.tar.gz"))


def test_restore_loads_every_weight(saved):
  folder, config, weights = saved
  model = deeplab_model.build_deeplab_model(config)
  assert checkpoints.restore_model(model, str(folder)).endswith("ckpt-5")
  for variable in model.weights:
    np.testing.assert_array_equal(variable.numpy(), weights[variable.path],
                                  err_msg=variable.path)


def test_restore_of_another_model_lists_missing_and_mismatched(saved):
  folder, config, _ = saved
  # Another number of classes and an extra layer: a raw restore would fail
  # on a bare shape error, or leave the extra layer at its initial value.
  other = deeplab_model.build_deeplab_model(dataclasses.replace(
      config, num_classes=4, boundary_refinement=True))
  with pytest.raises(checkpoints.CheckpointMismatchError) as error:
    checkpoints.restore_model(other, str(folder), "checkpoint_path")
  message = str(error.value)
  assert message.startswith(f"--checkpoint_path {folder}/ckpt-5 does not fit")
  assert "logits/kernel: [1, 1, 16, 3] -> [1, 1, 16, 4]" in message
  assert "model weights are not in it: logits_refinement/" in message
  assert "\n" not in message


def test_model_config_round_trip(tmp_path):
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v3_large_seg", num_classes=19,
      output_stride=32, decoder_output_stride=8, multi_grid=(1, 2, 4),
      image_pooling_crop_size=(769, 769), image_pooling_stride=(4, 5),
      aspp_branches=({"type": "conv"}, {"type": "separable", "rate": 6}),
      head="lr_aspp", aux_head=True)
  path = checkpoints.write_model_config(str(tmp_path), config)
  assert json.loads(open(path).read())["format_version"] == 1
  assert checkpoints.read_model_config(str(tmp_path)) == config
  # A checkpoint prefix reads its folder's config.
  assert checkpoints.read_model_config(str(tmp_path / "ckpt-9")) == config
  assert checkpoints.read_model_config(str(tmp_path / "none" / "x")) is None
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / checkpoints.MODEL_CONFIG_FILE).write_text("[1]")
  with pytest.raises(ValueError, match="bad/model_config.json"):
    checkpoints.read_model_config(str(tmp_path / "bad"))


def test_merge_names_the_contradicting_flag_and_both_values(caplog):
  saved_config = config_lib.ModelConfig(decoder_output_stride=4)
  given = config_lib.ModelConfig(decoder_output_stride=8, weight_decay=1e-4)
  # Flags not given explicitly never contradict: the saved config wins.
  assert checkpoints.merge_model_config(saved_config, given, {}) == (
      saved_config)
  explicit = {"decoder_output_stride": "decoder_output_stride"}
  with pytest.raises(ValueError) as error:
    checkpoints.merge_model_config(saved_config, given, explicit,
                                   source="--checkpoint_dir /runs/a")
  assert str(error.value).startswith(
      "--decoder_output_stride=8 contradicts the model config of "
      "--checkpoint_dir /runs/a, which has decoder_output_stride=4.")
  merged = checkpoints.merge_model_config(saved_config, given, explicit,
                                          override=True)
  assert merged.decoder_output_stride == 8
  assert "OVERRIDING" in caplog.text
  # Training-only fields (weight decay, ...) may change without override.
  merged = checkpoints.merge_model_config(
      saved_config, given, {"weight_decay": "weight_decay"})
  assert merged.weight_decay == 1e-4


def test_merge_any_quantize_delay_step_of_the_same_sign():
  """Official export_model.py takes --quantize_delay_step=0 for a model
  trained with any delay; quantized versus float is what contradicts."""
  flag = {"quantize_delay_step": "quantize_delay_step"}
  saved = config_lib.ModelConfig(quantize_delay_step=300)
  given = config_lib.ModelConfig(quantize_delay_step=0)
  assert checkpoints.merge_model_config(saved, given, flag) == saved
  with pytest.raises(ValueError, match="--quantize_delay_step=-1 contradicts"):
    checkpoints.merge_model_config(saved, config_lib.ModelConfig(), flag)
  with pytest.raises(ValueError, match="--quantize_delay_step must be >= -1"):
    config_lib.ModelConfig(quantize_delay_step=-2)


def test_a_tarball_has_no_model_config_even_beside_one(tmp_path, monkeypatch):
  """A zoo tarball is not read as the working directory's model_config.json."""
  monkeypatch.chdir(tmp_path)
  checkpoints.write_model_config(str(tmp_path), config_lib.ModelConfig())
  assert checkpoints.read_model_config("zoo_model.tar.gz") is None
  assert checkpoints.read_model_config(str(tmp_path)) is not None
