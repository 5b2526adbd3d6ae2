"""The optional auxiliary head (deeplab.core.modeling.heads.aux_head) and its wiring:
model outputs, the aux loss in model_fn, checkpoints, transfer, export and
the `--aux_loss_weight` flag."""

import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import backbone_test_utils as btu
from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.export import saved_model
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import model_variants
from deeplab.core.modeling.heads import aux_head
from deeplab.core.training import factory
from deeplab.core.training import losses
from deeplab.core.training import model_fn as model_fn_lib
from deeplab.core.training import transfer
from deeplab.core.training.model_fn import ModeKeys
from testing_utils import APP_ENV
from testing_utils import make_predictions_nontrivial
from testing_utils import randomize_weights

NUM_CLASSES = 3
AUX_PATHS_PREFIX = deeplab_model.AUX_HEAD_LAYER + "/"


def _aux_config(tiny_model_config):
  """The tiny model with an auxiliary head; no dropout (deterministic)."""
  return dataclasses.replace(
      tiny_model_config, aux_head=True, aux_head_filters=8,
      aux_head_dropout_rate=0.0, aspp_dropout_rate=0.0)


def _batch(num_classes=NUM_CLASSES):
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (2, 33, 33, 3)).astype(np.float32)
  labels = (images.mean(-1) // (256 / num_classes)).astype(np.int32)
  labels[:, :3] = 255
  return {"image": tf.constant(images)}, tf.constant(labels)


def _input_fn(num_classes=NUM_CLASSES):
  def input_fn(input_context=None):
    del input_context
    features, labels = _batch(num_classes)
    return tf.data.Dataset.from_tensors((features, labels)).repeat()
  return input_fn


# === The layer ===


def test_layer_shape_config_round_trip_and_bad_arguments():
  head = aux_head.AuxiliaryHead(
      num_classes=5, filters=8, kernel_size=3, dropout_rate=0.2,
      batch_norm_momentum=0.9, batch_norm_epsilon=1e-5, weight_decay=1e-4,
      activation="relu6", name="aux")
  x = np.random.default_rng(0).normal(size=(2, 9, 11, 16)).astype("float32")
  y = head(x, training=False)
  assert y.shape == (2, 9, 11, 5)
  assert head.compute_output_shape((None, 9, 11, 16)) == (None, 9, 11, 5)
  assert {w.path for w in head.weights} >= {
      "aux/conv/conv/kernel", "aux/conv/bn/gamma", "aux/logits/kernel",
      "aux/logits/bias"}
  # Both kernels are weight-decayed (slim convention).
  assert len(head.losses) == 2

  clone = aux_head.AuxiliaryHead.from_config(head.get_config())
  assert clone.get_config() == head.get_config()
  clone.build(x.shape)
  clone.set_weights(head.get_weights())
  np.testing.assert_allclose(clone(x, training=False), y, atol=1e-6)
  revived = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(head))
  assert isinstance(revived, aux_head.AuxiliaryHead)
  assert revived.get_config() == head.get_config()

  with pytest.raises(ValueError, match="dropout_rate"):
    aux_head.AuxiliaryHead(num_classes=5, dropout_rate=1.0)
  with pytest.raises(ValueError, match="num_classes"):
    aux_head.AuxiliaryHead(num_classes=0)


# === Backbone endpoints ===

# Channels of each variant's auxiliary endpoint: the stage before the last.
AUX_CHANNELS = {
    "mobilenet_v2": 96, "mobilenet_v3_large_seg": 112,
    "mobilenet_v3_small_seg": 48, "resnet_v1_50": 1024,
    "resnet_v1_50_beta": 1024, "resnet_v1_101": 1024,
    "resnet_v1_101_beta": 1024, "xception_41": 728, "xception_65": 728,
    "xception_71": 728, "resnet50": 1024, "resnet101": 1024,
    "xception": 728,
}
# Sizes the other backbone tests build at OS16 (btu.backbone is cached).
_SIZES = {"resnet50": 65, "resnet101": 65, "xception": 71}


# Checked on the NAS backbone tests' own (costly) builds:
# tests/core/modeling/backbones/test_nas_network.py.
NAS_VARIANTS = {"nas_pnasnet", "nas_hnasnet"}


def test_every_variant_has_an_aux_endpoint():
  assert set(AUX_CHANNELS) | NAS_VARIANTS == set(
      model_variants.known_model_variants())
  for name in NAS_VARIANTS:
    assert model_variants.get_model_variant(name).aux_endpoint


@pytest.mark.parametrize("name", sorted(AUX_CHANNELS))
def test_aux_endpoint_is_the_stride_16_stage_before_the_last(name):
  # Called as the other backbone tests call it, to hit btu's cache.
  model = (btu.backbone(name, 16, size=_SIZES[name]) if name in _SIZES
           else btu.backbone(name, 16))
  aux, final = model.output["aux"].shape, model.output["final"].shape
  assert aux[1:3] == final[1:3]  # Stride 16, as `final` at OS16.
  assert aux[-1] == AUX_CHANNELS[name]


def test_variant_without_aux_endpoint_names_the_flag(tiny_model_config,
                                                     monkeypatch):
  variant = dataclasses.replace(
      model_variants.get_model_variant("mobilenet_v2"), name="no_aux_net",
      aux_endpoint=None)
  monkeypatch.setitem(model_variants._REGISTRY, variant.name, variant)  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="no_aux_net.*--aux_loss_weight"):
    deeplab_model.build_deeplab_model(dataclasses.replace(
        tiny_model_config, model_variant="no_aux_net", aux_head=True))


# === The model ===


def test_model_returns_logits_and_aux_logits_at_input_size(tiny_model_config):
  model = deeplab_model.build_deeplab_model(_aux_config(tiny_model_config))
  images = np.random.default_rng(0).uniform(0, 255, (1, 33, 41, 3))
  logits, aux_logits = model(images.astype("float32"), training=False)
  assert logits.shape == aux_logits.shape == (1, 33, 41, NUM_CLASSES)
  assert logits.dtype == aux_logits.dtype == tf.float32
  names = [layer.name for layer in model.layers]
  assert names[-4:] == ["logits", "aux_head", "upsample_logits",
                        "upsample_aux_logits"]
  assert model.get_layer("upsample_aux_logits").align_corners
  # The head reads mobilenet_v2's layer_14 (96 * 0.35 -> 34 channels).
  assert model.get_layer("aux_head").input.shape[-1] == 34

  main = deeplab_model.main_output_model(model)
  assert deeplab_model.main_output_model(main) is main
  np.testing.assert_allclose(main(images.astype("float32")), logits,
                             atol=1e-6)
  assert not any(w.path.startswith(AUX_PATHS_PREFIX) for w in main.weights)


# === model_fn ===


def test_train_loss_is_main_plus_weighted_aux_and_eval_ignores_aux(
    tiny_model_config):
  model = deeplab_model.build_deeplab_model(_aux_config(tiny_model_config))
  features, labels = _batch()
  make_predictions_nontrivial(model, features["image"])
  # Dropout is off, so training=True outputs are deterministic.
  logits, aux_logits = model(features["image"], training=True)
  main_loss = losses.softmax_cross_entropy_loss(logits, labels, NUM_CLASSES,
                                                255)
  aux_loss = losses.softmax_cross_entropy_loss(aux_logits, labels,
                                               NUM_CLASSES, 255)
  assert abs(float(main_loss) - float(aux_loss)) > 1e-3

  params = model_fn_lib.ModelFnParams(
      model=model, num_classes=NUM_CLASSES, ignore_label=255,
      optimizer=keras.optimizers.SGD(0.1),
      loss_config=config_lib.LossConfig(aux_loss_weight=0.4))
  aux_kernel = model.get_layer("aux_head").logits.kernel
  before = aux_kernel.numpy().copy()
  spec = model_fn_lib.model_fn(features, labels, ModeKeys.TRAIN, params)
  np.testing.assert_allclose(float(spec.data_loss),
                             float(main_loss) + 0.4 * float(aux_loss),
                             rtol=1e-5)
  # The aux loss trains the aux head.
  assert not np.array_equal(aux_kernel.numpy(), before)

  spec = model_fn_lib.model_fn(features, labels, ModeKeys.EVAL, params)
  expected = np.argmax(model(features["image"], training=False)[0], -1)
  np.testing.assert_array_equal(spec.predictions["semantic"], expected)
  assert spec.predictions["probabilities"].shape[-1] == NUM_CLASSES


# === Checkpoints, transfer, export ===


@pytest.fixture(scope="module")
def aux_run(tmp_path_factory):
  """A checkpoint of a tiny model with the aux head and random weights.

  Returns (model_config, model_dir, its weights by path).
  """
  model_dir = str(tmp_path_factory.mktemp("aux_run"))
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=NUM_CLASSES,
      output_stride=16, decoder_output_stride=4, depth_multiplier=0.35,
      aspp_filters=16, decoder_filters=16, low_level_filters=8,
      batch_norm_momentum=0.9, aux_head=True, aux_head_filters=8)
  model = randomize_weights(deeplab_model.build_deeplab_model(config))
  tf.train.Checkpoint(model=model).save(f"{model_dir}/ckpt")
  return config, model_dir, {w.path: w.numpy().copy() for w in model.weights}


def test_aux_checkpoint_restores_into_a_model_without_aux(aux_run):
  config, model_dir, trained = aux_run
  assert any(p.startswith(AUX_PATHS_PREFIX) for p in trained)
  # As evaluate.py / export_model.py do: no aux head, the shared restore.
  model = deeplab_model.build_deeplab_model(
      checkpoints.inference_model_config(config))
  checkpoints.restore_model(model, model_dir)
  restored = {w.path: w.numpy() for w in model.weights}
  assert set(restored) == {p for p in trained
                           if not p.startswith(AUX_PATHS_PREFIX)}
  for path, value in restored.items():
    np.testing.assert_array_equal(value, trained[path], err_msg=path)


def test_runner_image_summaries_of_an_aux_model(aux_run, tmp_path):
  config, _, _ = aux_run
  runner = factory.make_runner(
      config, str(tmp_path), 255, train_config=config_lib.TrainConfig.from_flat(
          train_logdir=str(tmp_path), aux_loss_weight=0.4))
  iterator = iter(_input_fn()())
  with tf.summary.create_file_writer(str(tmp_path)).as_default():
    runner._write_image_summaries(iterator, step=1)  # pylint: disable=protected-access
  tags = set()
  for events in tf.io.gfile.glob(f"{tmp_path}/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(events):
      tags.update(value.tag for value in event.summary.value)
  assert "prediction" in tags


def test_export_of_an_aux_model_serves_the_main_output_only(aux_run,
                                                            tmp_path):
  config, model_dir, _ = aux_run
  model = deeplab_model.build_deeplab_model(config)
  checkpoints.restore_model(model, model_dir)
  path = saved_model.export_saved_model(model, str(tmp_path / "export"),
                                       with_probabilities=True)
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures[saved_model.SERVING_SIGNATURE]
  assert set(serve.structured_outputs) == {"semantic_predictions",
                                           "probabilities"}
  image = np.random.default_rng(1).integers(0, 256, (1, 33, 33, 3), np.uint8)
  outputs = serve(ImageTensor=tf.constant(image))
  logits = model(image.astype("float32"), training=False)[0]
  np.testing.assert_allclose(outputs["probabilities"],
                             tf.nn.softmax(logits), atol=1e-5)
  main = deeplab_model.main_output_model(model)
  assert len(loaded.variables_to_serve) == len(main.variables)


def test_fine_tuning_with_other_classes_skips_the_aux_head(aux_run):
  config, model_dir, trained = aux_run
  # Same classes: every weight, the aux head's included, is checkpointed.
  same = deeplab_model.build_deeplab_model(config)
  report = transfer.load_initial_checkpoint(same, model_dir)
  assert not report.missing and not report.skipped
  assert len(report.loaded) == len(trained)
  for weight in same.weights:
    np.testing.assert_array_equal(weight.numpy(), trained[weight.path],
                                  err_msg=weight.path)

  target = deeplab_model.build_deeplab_model(
      dataclasses.replace(config, num_classes=5))
  report = transfer.load_initial_checkpoint(
      target, model_dir, initialize_last_layer=False,
      last_layers_contain_logits_only=True)
  assert {p.split("/")[0] for p in report.skipped} == {"logits", "aux_head"}
  assert not report.missing
  for path in report.loaded:
    np.testing.assert_array_equal(
        next(w.numpy() for w in target.weights if w.path == path),
        trained[path], err_msg=path)
  # Without the aux head in the new model nothing is skipped but logits.
  plain = deeplab_model.build_deeplab_model(
      dataclasses.replace(config, num_classes=5, aux_head=False))
  report = transfer.load_initial_checkpoint(
      plain, model_dir, initialize_last_layer=False,
      last_layers_contain_logits_only=True)
  assert {p.split("/")[0] for p in report.skipped} == {"logits"}


def test_aux_head_trains_at_every_freeze_level_and_is_a_last_layer(
    tiny_model_config):
  model = deeplab_model.build_deeplab_model(_aux_config(tiny_model_config))
  transfer.apply_freeze_level(model, "all_but_logits")
  assert {v.path.split("/")[0] for v in model.trainable_variables} == {
      "logits", "aux_head"}
  transfer.apply_freeze_level(model, "backbone")
  assert {v.path.split("/")[0] for v in model.trainable_variables} == {
      "aspp", "decoder", "logits", "aux_head"}
  multipliers = transfer.gradient_multipliers(
      model, 10.0, last_layers_contain_logits_only=True)
  assert multipliers["aux_head/logits/kernel"] == 10.0
  assert multipliers["aux_head/logits/bias"] == 20.0


def test_aux_loss_weight_needs_an_aux_model(tiny_model_config, tmp_path):
  train_config = config_lib.TrainConfig.from_flat(train_logdir=str(tmp_path),
                                        aux_loss_weight=0.4)
  with pytest.raises(ValueError, match="--aux_loss_weight=0.4.*aux_head"):
    factory.make_runner(tiny_model_config, str(tmp_path), 255,
                           train_config=train_config)
  with pytest.raises(ValueError, match="--aux_loss_weight must be >= 0"):
    config_lib.LossConfig(aux_loss_weight=-0.1)


# === The flag ===

_PARSE_FLAGS = """
import json, sys
from absl import flags
from deeplab import train
result = {}
for value in sys.argv[1:]:
  flags.FLAGS.unparse_flags()
  argv = ["train", "--dataset=demo", "--dataset_dir=/data",
          "--train_logdir=/logs"]
  try:
    flags.FLAGS(argv + ([f"--aux_loss_weight={value}"] if value else []))
  except flags.Error as error:
    result[value] = "error: " + str(error)
    continue
  _, model_config, _, train_config = train.configs_from_flags()
  result[value] = [model_config.aux_head, train_config.loss.aux_loss_weight]
print(json.dumps(result))
"""


def test_aux_loss_weight_flag_builds_the_head_and_weights_the_loss():
  result = subprocess.run(
      [sys.executable, "-c", _PARSE_FLAGS, "", "0.4", "-1"],
      capture_output=True, text=True, timeout=120, env=APP_ENV, check=True)
  parsed = json.loads(result.stdout.strip().splitlines()[-1])
  assert parsed[""] == [False, 0.0]
  assert parsed["0.4"] == [True, 0.4]
  assert parsed["-1"].startswith("error:") and "aux_loss_weight" in (
      parsed["-1"])
