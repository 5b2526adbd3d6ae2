"""Tests of official-checkpoint import (deeplab.core.modeling.import_weights).

The synthetic checkpoints are written with tf.compat.v1 variables named as
official DeepLab names them (the names below are spelt out independently of
the product's name map); their shapes are our model's.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import backbone_test_utils as btu
from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import import_weights

BN = ("gamma", "beta", "moving_mean", "moving_variance")


def _conv(scope, depthwise=False):
  kernel = "depthwise_weights" if depthwise else "weights"
  return [f"{scope}/{kernel}"] + [f"{scope}/BatchNorm/{a}" for a in BN]


def _head_names(num_classes_rates=3):
  names = _conv("image_pooling") + _conv("aspp0") + _conv("concat_projection")
  for i in range(1, num_classes_rates + 1):
    names += _conv(f"aspp{i}_depthwise", True) + _conv(f"aspp{i}_pointwise")
  names += _conv("decoder/feature_projection0")
  for i in (0, 1):
    names += (_conv(f"decoder/decoder_conv{i}_depthwise", True) +
              _conv(f"decoder/decoder_conv{i}_pointwise"))
  return names + ["logits/semantic/weights", "logits/semantic/biases"]


def _mobilenet_v2_names():
  names = _conv("MobilenetV2/Conv")
  names += _conv("MobilenetV2/expanded_conv/depthwise", True)
  names += _conv("MobilenetV2/expanded_conv/project")
  for i in range(1, 17):
    scope = f"MobilenetV2/expanded_conv_{i}"
    names += (_conv(f"{scope}/expand") + _conv(f"{scope}/depthwise", True) +
              _conv(f"{scope}/project"))
  return names


def _xception_65_names():
  names = _conv("xception_65/entry_flow/conv1_1")
  names += _conv("xception_65/entry_flow/conv1_2")
  blocks = ([("entry_flow/block1", 1, True), ("entry_flow/block2", 1, True),
             ("entry_flow/block3", 1, True), ("middle_flow/block1", 16, False),
             ("exit_flow/block1", 1, True), ("exit_flow/block2", 1, False)])
  for block, units, shortcut in blocks:
    for unit in range(1, units + 1):
      scope = f"xception_65/{block}/unit_{unit}/xception_module"
      for i in (1, 2, 3):
        names += (_conv(f"{scope}/separable_conv{i}_depthwise", True) +
                  _conv(f"{scope}/separable_conv{i}_pointwise"))
      if shortcut:
        names += _conv(f"{scope}/shortcut")
  return names


def _resnet_v1_101_beta_names():
  names = []
  for conv in ("conv1_1", "conv1_2", "conv1_3"):
    names += _conv(f"resnet_v1_101/{conv}")
  for block, units in (("block1", 3), ("block2", 4), ("block3", 23),
                       ("block4", 3)):
    for unit in range(1, units + 1):
      scope = f"resnet_v1_101/{block}/unit_{unit}/bottleneck_v1"
      if unit == 1:
        names += _conv(f"{scope}/shortcut")
      for conv in ("conv1", "conv2", "conv3"):
        names += _conv(f"{scope}/{conv}")
  return names


def _mobilenet_v3_small_seg_names():
  names = _conv("MobilenetV3/Conv") + _conv("MobilenetV3/Conv_1")
  with_se = {0, 3, 4, 5, 6, 7, 8, 9, 10}
  for i in range(11):
    scope = "MobilenetV3/expanded_conv" + (f"_{i}" if i else "")
    if i:  # Block 0 (16 -> 16) does not expand.
      names += _conv(f"{scope}/expand")
    names += (_conv(f"{scope}/depthwise", True) + _conv(f"{scope}/project"))
    if i in with_se:
      for conv in ("Conv", "Conv_1"):
        names += [f"{scope}/squeeze_excite/{conv}/weights",
                  f"{scope}/squeeze_excite/{conv}/biases"]
  return names


def _build(variant, num_classes=3, **overrides):
  config = config_lib.ModelConfig(
      model_variant=variant, num_classes=num_classes,
      atrous_rates=(6, 12, 18), decoder_output_stride=4, aspp_filters=16,
      decoder_filters=16, low_level_filters=8, **overrides)
  return deeplab_model.build_deeplab_model(config, input_shape=(33, 33, 3))


def _write_tf1_checkpoint(path, values):
  """Writes `values` (name -> array) as a TF1 name-based checkpoint."""
  with tf.Graph().as_default():
    variables = [tf.compat.v1.get_variable(name, initializer=value)
                 for name, value in values.items()]
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      return saver.save(session, path, write_meta_graph=False)


def _official_values(model, names, seed=0):
  """Random values of the shapes our map gives those official names."""
  mapping = import_weights.official_variable_map(model)
  assert sorted(mapping) == sorted(names)  # The map covers exactly them.
  rng = np.random.default_rng(seed)
  values = {}
  for name in names:
    shape = tuple(mapping[name].shape)
    if name.endswith(("gamma", "moving_variance")):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith(("beta", "moving_mean", "biases")):
      value = rng.normal(0, 0.1, shape)
    else:  # Kernels: keep activations of deep nets finite and non-zero.
      fan_in = np.prod(shape[:2]) * (1 if "depthwise" in name else shape[2])
      value = rng.normal(0, np.sqrt(1.0 / fan_in), shape)
    values[name] = value.astype(np.float32)
  return values


@pytest.mark.parametrize("variant,backbone_names", [
    ("mobilenet_v2", _mobilenet_v2_names),
    ("xception_65", _xception_65_names),
    ("resnet_v1_101_beta", _resnet_v1_101_beta_names),
    ("mobilenet_v3_small_seg", _mobilenet_v3_small_seg_names),
])
def test_every_official_variable_is_used(variant, backbone_names, tmp_path):
  overrides = {"depth_multiplier": 0.5} if variant == "mobilenet_v2" else {}
  model = _build(variant, **overrides)
  names = backbone_names() + _head_names()
  values = _official_values(model, names)
  values["global_step"] = np.int64(1000)
  values["aspp0/weights/Momentum"] = values["aspp0/weights"]
  prefix = _write_tf1_checkpoint(str(tmp_path / "model.ckpt"), values)

  x = btu.images(33, seed=2) * 127.5 + 127.5
  before = model(x).numpy()
  report = import_weights.load_official_checkpoint(model, prefix)
  assert sorted(report.matched) == sorted(names)
  assert not report.missing and not report.mismatched and not report.unused
  assert sorted(report.training_state) == ["aspp0/weights/Momentum",
                                           "global_step"]
  mapping = import_weights.official_variable_map(model)
  for name in names[:3] + names[-3:]:
    np.testing.assert_array_equal(mapping[name].numpy(), values[name])
  after = model(x).numpy()
  assert np.isfinite(after).all()
  assert np.abs(after - before).max() > 1e-3


def test_other_num_classes_leaves_logits_and_reports_them(tmp_path):
  source = _build("mobilenet_v2", num_classes=21, depth_multiplier=0.5)
  names = _mobilenet_v2_names() + _head_names()
  prefix = _write_tf1_checkpoint(str(tmp_path / "model.ckpt"),
                                 _official_values(source, names))
  target = _build("mobilenet_v2", num_classes=5, depth_multiplier=0.5)
  logits_before = target.get_layer("logits").kernel.numpy()
  report = import_weights.load_official_checkpoint(target, prefix)
  assert sorted(report.mismatched) == [
      "logits/semantic/biases: (21,) -> (5,)",
      "logits/semantic/weights: (1, 1, 16, 21) -> (1, 1, 16, 5)"]
  assert len(report.matched) == len(names) - 2
  np.testing.assert_array_equal(target.get_layer("logits").kernel.numpy(),
                                logits_before)


def test_keras_applications_variant_has_no_official_names():
  with pytest.raises(ValueError, match="no official DeepLab variable"):
    import_weights.official_variable_map(btu.backbone("resnet50", 32, 65))


@pytest.mark.slow
def test_cli_imports_tarball_and_writes_our_checkpoint(tmp_path):
  model = _build("mobilenet_v2", depth_multiplier=0.5)
  names = _mobilenet_v2_names()  # An ImageNet checkpoint: backbone only.
  values = {n: v for n, v in _official_values(
      model, names + _head_names()).items() if n in names}
  folder = tmp_path / "zoo" / "deeplabv3_mnv2"
  folder.mkdir(parents=True)
  _write_tf1_checkpoint(str(folder / "model.ckpt"), values)
  tarball = tmp_path / "zoo.tar.gz"
  import tarfile  # pylint: disable=g-import-not-at-top
  with tarfile.open(tarball, "w:gz") as tar:
    tar.add(folder, arcname="deeplabv3_mnv2")
  output = tmp_path / "out" / "model"
  subprocess.run(
      [sys.executable, "-m", "deeplab.core.import_weights",
       "--model_variant=mobilenet_v2", "--depth_multiplier=0.5",
       "--num_classes=3", "--atrous_rates=6", "--atrous_rates=12",
       "--atrous_rates=18", "--decoder_output_stride=4",
       f"--source={tarball}", f"--output={output}"],
      check=True, capture_output=True, text=True)
  report = json.loads((tmp_path / "out" /
                       "model.import_report.json").read_text())
  assert sorted(report["matched"]) == sorted(names)
  assert len(report["missing"]) == len(_head_names())
  # Our checkpoint format: tf.train.Checkpoint(model=...), restored as-is.
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, depth_multiplier=0.5,
      atrous_rates=(6, 12, 18), decoder_output_stride=4)
  # The model travels with it: model_config.json beside the checkpoint.
  assert checkpoints.read_model_config(str(output)) == config
  restored = deeplab_model.build_deeplab_model(config)
  tf.train.Checkpoint(model=restored).read(str(output)).assert_consumed()
  mapping = import_weights.official_variable_map(restored)
  np.testing.assert_array_equal(mapping[names[0]].numpy(), values[names[0]])


def test_written_checkpoint_initialises_training_with_other_classes(tmp_path):
  # What train.py --tf_initial_checkpoint --noinitialize_last_layer does.
  from deeplab.core.training import transfer  # pylint: disable=g-import-not-at-top
  source = _build("mobilenet_v2", num_classes=21, depth_multiplier=0.5)
  names = _mobilenet_v2_names() + _head_names()
  prefix = _write_tf1_checkpoint(str(tmp_path / "official" / "model.ckpt"),
                                 _official_values(source, names))
  report = import_weights.load_official_checkpoint(source, prefix)
  ours = str(tmp_path / "ours" / "model")
  import_weights.write_checkpoint(source, ours, report)
  target = _build("mobilenet_v2", num_classes=5, depth_multiplier=0.5)
  result = transfer.load_initial_checkpoint(
      target, ours, initialize_last_layer=False,
      last_layers_contain_logits_only=True)
  assert len(result.skipped) == 2 and not result.missing  # logits w, b
  for layer in ("Conv1", "aspp", "decoder"):
    for want, got in zip(source.get_layer(layer).weights,
                         target.get_layer(layer).weights):
      np.testing.assert_array_equal(got.numpy(), want.numpy())


def _zoo_head_names(num_classes):
  """Official variables of the MobileNetV3 zoo head (model_zoo Cityscapes
  flags): SE image pooling (a conv with bias, no BN), the 1x1 branch, and
  a sum-merge decoder whose two 1x1 convs with biases are the logits."""
  del num_classes
  return (["image_pooling/weights", "image_pooling/biases"] +
          _conv("aspp0") +
          [f"decoder/{scope}/{kind}" for scope in ("feature_projection0",
                                                   "decoder_conv0")
           for kind in ("weights", "biases")])


def _build_zoo_head(num_classes):
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v3_small_seg", num_classes=num_classes,
      output_stride=32, decoder_output_stride=8, aspp_filters=16,
      image_pooling_crop_size=(17, 17), image_pooling_stride=(1, 1),
      aspp_with_concat_projection=False,
      aspp_with_squeeze_and_excitation=True, image_se_uses_qsigmoid=True,
      decoder_use_sum_merge=True, decoder_output_is_logits=True)
  return deeplab_model.build_deeplab_model(config, input_shape=(33, 33, 3))


def test_mobilenet_v3_zoo_head_imports_with_cli_and_fine_tunes(tmp_path):
  """The zoo head imports (it crashed with KeyError: 'kernel'), and
  --tf_initial_checkpoint from it trains another number of classes."""
  from deeplab.core.training import transfer  # pylint: disable=g-import-not-at-top
  source = _build_zoo_head(19)
  names = _mobilenet_v3_small_seg_names() + _zoo_head_names(19)
  values = _official_values(source, names)
  folder = tmp_path / "zoo" / "deeplab_mnv3_small_cityscapes_trainfine"
  folder.mkdir(parents=True)
  _write_tf1_checkpoint(str(folder / "model.ckpt"), values)
  tarball = tmp_path / "zoo.tar.gz"
  import tarfile  # pylint: disable=g-import-not-at-top
  with tarfile.open(tarball, "w:gz") as tar:
    tar.add(folder, arcname=folder.name)
  output = tmp_path / "out" / "model"
  subprocess.run(
      [sys.executable, "-m", "deeplab.core.import_weights",
       "--model_variant=mobilenet_v3_small_seg", "--num_classes=19",
       "--output_stride=32", "--decoder_output_stride=8",
       "--image_pooling_crop_size=17,17", "--image_pooling_stride=1,1",
       "--aspp_convs_filters=16", "--decoder_filters=19",
       "--noaspp_with_concat_projection", "--aspp_with_squeeze_and_excitation",
       "--image_se_uses_qsigmoid", "--decoder_use_sum_merge",
       "--decoder_output_is_logits", f"--source={tarball}",
       f"--output={output}"], check=True, capture_output=True, text=True)
  report = json.loads((tmp_path / "out" /
                       "model.import_report.json").read_text())
  assert sorted(report["matched"]) == sorted(names)
  assert not (report["missing"] or report["unused"] or report["mismatched"])
  # Fine-tuning to 5 classes: the decoder holds the class-dependent convs,
  # so (as official) the last layers are the whole head.
  target = _build_zoo_head(5)
  result = transfer.load_initial_checkpoint(
      target, str(output), initialize_last_layer=False,
      last_layers_contain_logits_only=False)
  assert result.skipped and not result.missing
  mapping = import_weights.official_variable_map(target)
  for name in _mobilenet_v3_small_seg_names():
    np.testing.assert_array_equal(mapping[name].numpy(), values[name])


def test_regular_conv_decoder_uses_slim_repeat_scopes():
  """Official `slim.repeat(..., scope='decoder_conv0')` names its convs
  decoder_conv0/decoder_conv0_1 and _2."""
  model = _build("mobilenet_v2", depth_multiplier=0.5,
                 decoder_use_separable_conv=False)
  names = set(import_weights.official_variable_map(model))
  assert "decoder/decoder_conv0/decoder_conv0_1/weights" in names
  assert "decoder/decoder_conv0/decoder_conv0_2/BatchNorm/gamma" in names
