"""Transfer learning: initial checkpoints, last layers, freeze levels."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.training import factory
from deeplab.core.training import transfer
from testing_utils import randomize_weights


def _input_fn(num_classes):
  def input_fn(input_context=None):
    del input_context
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 33, 33, 3)).astype(np.float32)
    labels = (images.mean(-1) // (256 / num_classes)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices(
        ({"image": images}, labels)).repeat().batch(2)
  return input_fn


def _train_config(model_dir, **kwargs):
  return config_lib.TrainConfig.from_flat(
      train_logdir=model_dir, training_number_of_steps=4, optimizer="adam",
      base_learning_rate=1e-3, save_interval_steps=100, log_steps=1,
      image_summary_steps=0, **kwargs)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
  """A 3-class model trained 2 steps; returns (model_dir, its weights)."""
  model_dir = str(tmp_path_factory.mktemp("source"))
  tiny_config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, output_stride=16,
      decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=16,
      decoder_filters=16, low_level_filters=8, batch_norm_momentum=0.9)
  runner = factory.make_runner(tiny_config, model_dir, 255,
                                  train_config=_train_config(model_dir))
  runner.train(_input_fn(3), max_steps=2)
  return model_dir, {w.path: w.numpy().copy() for w in runner.model.weights}


def test_fine_tune_with_other_classes_loads_every_non_logits_variable(
    tiny_model_config, trained_checkpoint, tmp_path):
  source_dir, source_weights = trained_checkpoint
  config = dataclasses.replace(tiny_model_config, num_classes=5)
  model_dir = str(tmp_path / "fine_tune")
  runner = factory.make_runner(
      config, model_dir, 255, train_config=_train_config(
          model_dir, tf_initial_checkpoint=source_dir,
          initialize_last_layer=False, last_layers_contain_logits_only=True))
  # Capture the weights right after initialisation, before any update.
  loaded = {}
  original_init = runner._init_fn

  def init_and_capture(model):
    report = original_init(model)
    loaded.update({w.path: w.numpy().copy() for w in model.weights})
    return report

  runner._init_fn = init_and_capture
  assert runner.train(_input_fn(5), max_steps=1) == 1
  report = runner.init_report
  logits_paths = {"logits/kernel", "logits/bias"}
  assert set(report.skipped) == logits_paths
  assert not report.missing
  assert set(report.loaded) == set(source_weights) - logits_paths
  for path in report.loaded:
    np.testing.assert_array_equal(loaded[path], source_weights[path],
                                  err_msg=path)
  assert loaded["logits/kernel"].shape[-1] == 5

  # A second run resumes from its own checkpoint, not from the initial one.
  again = factory.make_runner(
      config, model_dir, 255, train_config=_train_config(
          model_dir, tf_initial_checkpoint=source_dir,
          initialize_last_layer=False))
  assert again.train(_input_fn(5), max_steps=2) == 2
  assert again.init_report is None


def test_all_last_layers_are_skipped_unless_logits_only(
    tiny_model_config, trained_checkpoint):
  source_dir, _ = trained_checkpoint
  model = deeplab_model.build_deeplab_model(
      dataclasses.replace(tiny_model_config, num_classes=5))
  report = transfer.load_initial_checkpoint(
      model, source_dir, initialize_last_layer=False,
      last_layers_contain_logits_only=False)
  skipped_layers = {p.split("/")[0] for p in report.skipped}
  assert skipped_layers == {"aspp", "decoder", "logits"}
  assert report.loaded and not any(
      p.split("/")[0] in skipped_layers for p in report.loaded)


def test_other_classes_without_skipping_names_the_variable(
    tiny_model_config, trained_checkpoint):
  source_dir, _ = trained_checkpoint
  model = deeplab_model.build_deeplab_model(
      dataclasses.replace(tiny_model_config, num_classes=5))
  with pytest.raises(ValueError, match="logits/.*initialize_last_layer"):
    transfer.load_initial_checkpoint(model, source_dir)


def test_missing_initial_checkpoint_is_named(tiny_model_config, tmp_path):
  missing = str(tmp_path / "nowhere" / "ckpt-1")
  with pytest.raises(FileNotFoundError, match="nowhere"):
    factory.make_runner(tiny_model_config, str(tmp_path / "t"), 255,
                           train_config=_train_config(
                               str(tmp_path / "t"),
                               tf_initial_checkpoint=missing))


def test_model_only_checkpoint_loads(tiny_model_config, tmp_path):
  """Checkpoints of `tf.train.Checkpoint(model=...)` (import_weights)."""
  source = randomize_weights(deeplab_model.build_deeplab_model(
      tiny_model_config))
  prefix = tf.train.Checkpoint(model=source).write(str(tmp_path / "imported"))
  target = deeplab_model.build_deeplab_model(tiny_model_config)
  report = transfer.load_initial_checkpoint(target, prefix)
  assert len(report.loaded) == len(target.weights)
  for a, b in zip(source.weights, target.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_freeze_levels(tiny_model_config):
  model = deeplab_model.build_deeplab_model(tiny_model_config)
  frozen = transfer.apply_freeze_level(model, "all_but_logits")
  assert {v.path for v in model.trainable_variables} == {
      "logits/kernel", "logits/bias"}
  assert "aspp" in frozen and "logits" not in frozen
  transfer.apply_freeze_level(model, "backbone")
  assert {v.path.split("/")[0] for v in model.trainable_variables} == {
      "aspp", "decoder", "logits"}
  transfer.apply_freeze_level(model, "none", freeze_batch_norm=True)
  trainable = {v.path for v in model.trainable_variables}
  assert "Conv1/kernel" in trainable
  assert not any(p.endswith(("gamma", "beta")) for p in trainable)
  with pytest.raises(ValueError, match="freeze_level"):
    transfer.apply_freeze_level(model, "head")


def test_transfer_stage_then_full_fine_tuning(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "stage")
  runner = factory.make_runner(
      tiny_model_config, model_dir, 255, train_config=_train_config(
          model_dir, freeze_level="all_but_logits", transfer_steps=2))
  model = runner.model
  before = {w.path: w.numpy().copy() for w in model.trainable_variables}
  runner.train(_input_fn(3), max_steps=2)
  changed = {p for p, v in before.items()
             if not np.array_equal(v, _value(model, p))}
  assert changed == {"logits/kernel", "logits/bias"}
  runner.train(_input_fn(3), max_steps=3)
  assert not np.array_equal(_value(model, "Conv1/kernel"),
                            before["Conv1/kernel"])


def _value(model, path):
  return next(w.numpy() for w in model.weights if w.path == path)


def test_last_layer_gradient_multiplier(tiny_model_config):
  model = deeplab_model.build_deeplab_model(tiny_model_config)
  multipliers = transfer.gradient_multipliers(model, 10.0,
                                              last_layers_contain_logits_only=True)
  assert multipliers == {"logits/kernel": 10.0, "logits/bias": 20.0}
  assert transfer.gradient_multipliers(model, 1.0) == {}
  everything = transfer.gradient_multipliers(model, 3.0)
  assert {p.split("/")[0] for p in everything} == {"aspp", "decoder",
                                                   "logits"}
  variables = [v for v in model.trainable_variables
               if v.path in ("logits/kernel", "Conv1/kernel")]
  grads = [tf.ones(v.shape) for v in variables]
  scaled = transfer.apply_gradient_multipliers(grads, variables, multipliers)
  for v, g in zip(variables, scaled):
    expected = 10.0 if v.path == "logits/kernel" else 1.0
    np.testing.assert_allclose(g.numpy(), expected)


def test_logits_only_fine_tuning_also_skips_boundary_refinement(
    tiny_model_config, tmp_path):
  # The refinement layer works on the logits, so its shapes follow
  # num_classes: logits-only fine-tuning must leave it out too.
  source = deeplab_model.build_deeplab_model(
      dataclasses.replace(tiny_model_config, boundary_refinement=True))
  prefix = tf.train.Checkpoint(model=source).write(str(tmp_path / "ckpt"))
  target = deeplab_model.build_deeplab_model(dataclasses.replace(
      tiny_model_config, num_classes=5, boundary_refinement=True))
  report = transfer.load_initial_checkpoint(
      target, prefix, initialize_last_layer=False,
      last_layers_contain_logits_only=True)
  skipped_layers = {path.split("/")[0] for path in report.skipped}
  assert skipped_layers == {"logits", "logits_refinement"}
  assert not report.missing
  assert any(path.startswith("decoder/") for path in report.loaded)
