"""Quantization-aware training end to end: a few steps with
`quantize_delay_step`, then a full-integer TFLite model from the learned
ranges alone (no calibration images)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.export import predictors
from deeplab.core.export import tflite_export
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import quantize
from deeplab.core.training import factory
from deeplab.datasets import input_pipeline
import testing_utils
import trained_demo

# One training step, a rebuild and a conversion: about a minute.
pytestmark = pytest.mark.slow
SIZE = 33
# One traced (quantized) training step; the float steps before a delay are
# checked on the runner's switch alone.
DELAY, STEPS = 0, 1


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("qat")
  testing_utils.build_demo_tfrecords(root, num_train=8, num_val=2,
                                     image_size=SIZE)
  model_config = config_lib.ModelConfig(**dict(
      trained_demo.MODEL_CONFIG, quantize_delay_step=DELAY))
  train_config = config_lib.TrainConfig.from_flat(
      train_logdir=str(root / "train"), training_number_of_steps=STEPS,
      optimizer="adam", base_learning_rate=1e-3, save_interval_steps=STEPS,
      log_steps=STEPS, image_summary_steps=0)
  runner = factory.make_runner(model_config, str(root / "train"), 255,
                               train_config=train_config)
  data_config = config_lib.DataConfig(
      dataset="demo", dataset_dir=str(root / "tfrecord"), split="train",
      batch_size=4, crop_size=(SIZE, SIZE))
  runner.train(input_pipeline.make_input_fn(data_config), STEPS)
  return root, runner


def test_quantization_starts_at_the_delay_step(qat_run):
  _, runner = qat_run
  learned = [q for q in quantize.quantizers(runner.model)
             if q.fixed_range is None]
  assert learned
  # Every training step from DELAY on updated the ranges once.
  assert {float(q.updates.numpy()) for q in learned} == {STEPS - DELAY}
  assert all(q.max.numpy() > q.min.numpy() for q in learned)
  # Before the delay step the runner trains the float graph: the switch
  # turns the fake-quant ops off, then on, and retraces each time.
  config = runner.task.model_config
  runner.task.model_config = dataclasses.replace(config,
                                                 quantize_delay_step=5)
  try:
    runner._train_step = "traced"  # pylint: disable=protected-access
    runner._apply_quantization(4)  # pylint: disable=protected-access
    assert not quantize.quantizers(runner.model)[0].active
    assert runner._train_step is None  # pylint: disable=protected-access
    runner._apply_quantization(5)  # pylint: disable=protected-access
    assert quantize.quantizers(runner.model)[0].active
  finally:
    runner.task.model_config = config


def test_int8_tflite_of_the_checkpoint_is_full_integer(qat_run):
  """Export as export_model.py does: the model rebuilt from the saved
  config (quantized), weights and ranges restored strictly, then int8
  from the learned ranges alone."""
  root, runner = qat_run
  with open(os.path.join(root, "train", checkpoints.MODEL_CONFIG_FILE)) as f:
    assert json.load(f)["model_config"]["quantize_delay_step"] == DELAY
  model = deeplab_model.build_deeplab_model(checkpoints.inference_model_config(
      checkpoints.read_model_config(str(root / "train"))))
  assert quantize.is_quantized(model)
  checkpoints.restore_model(model, str(root / "train"))
  for ours, theirs in zip(quantize.quantizers(model),
                          quantize.quantizers(runner.model)):
    assert ours.max.numpy() == theirs.max.numpy()

  # No calibration images; probabilities out, to compare them below.
  data = tflite_export.convert(model, (SIZE, SIZE), "int8",
                               with_probabilities=True)
  interpreter = tf.lite.Interpreter(model_content=data)
  ops = {op["op_name"] for op in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert "DEQUANTIZE" not in ops, ops
  floats = [d["name"] for d in interpreter.get_tensor_details()
            if d["dtype"] == np.float32]
  assert not floats, floats
  path = os.path.join(root, "deeplab_int8.tflite")
  with open(path, "wb") as f:
    f.write(data)
  tflite = predictors.TFLitePredictor(path)
  assert tflite.quantized
  image = np.random.default_rng(0).uniform(0, 255, (SIZE, SIZE, 3))
  _, expected = predictors.KerasPredictor(model)(image.astype(np.float32))
  _, probabilities = tflite(image)
  # The fake-quant graph simulates the int8 one: the same probabilities up
  # to a few output steps (1/256) of rounding.
  assert np.abs(probabilities - expected).max() < 8 / 256
  # The default (lean) int8 model: integer labels, no float tensor either.
  lean = tf.lite.Interpreter(model_content=tflite_export.convert(
      model, (SIZE, SIZE), "int8"))
  assert "ARG_MAX" in {op["op_name"] for op in lean._get_ops_details()}  # pylint: disable=protected-access
  assert not [d["name"] for d in lean.get_tensor_details()
              if d["dtype"] == np.float32]
