"""export_model.py and evaluate.py end to end, in subprocesses.

One export writes every format; evaluate.py then scores the checkpoint and
each format side by side. Bad input gets one clear error line.
"""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.datasets import build_demo_data
from testing_utils import assert_clear_error
from testing_utils import DEMO_MODEL_FLAGS
from testing_utils import make_predictions_nontrivial
from testing_utils import run_app

def _val_images(voc_dir):
  """The demo val split's images, as the evaluation reads them."""
  with open(os.path.join(voc_dir, "ImageSets", "Segmentation", "val.txt")) as f:
    names = f.read().split()
  return np.stack([np.asarray(Image.open(
      os.path.join(voc_dir, "JPEGImages", f"{name}.jpg")).convert("RGB"))
                   for name in names])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """Demo TFRecords and a checkpoint of a (random, non-trivial) model."""
  root = tmp_path_factory.mktemp("apps")
  info = build_demo_data.generate_demo_dataset(
      str(root / "voc"), num_train=8, num_val=3, image_size=64, seed=2)
  build_demo_data.build_demo_tfrecords(info["output_dir"],
                                       str(root / "tfrecord"), num_shards=1)
  config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=5, decoder_output_stride=4,
      depth_multiplier=0.35, batch_norm_momentum=0.9)
  keras.utils.set_random_seed(0)
  model = deeplab_model.build_deeplab_model(config)
  # Calibrated on the val images themselves: on other images the model may
  # label every val pixel with one absent class, and the mIoU would be 0.
  make_predictions_nontrivial(model, _val_images(info["output_dir"]))
  # As written before model configs travelled with checkpoints.
  prefix = str(root / "train" / "ckpt-7")
  tf.train.Checkpoint(model=model).write(prefix)
  # As training writes it now: model_config.json beside the checkpoint.
  tf.train.Checkpoint(model=model).write(str(root / "configured" / "ckpt-7"))
  checkpoints.write_model_config(str(root / "configured"), config)
  return root, prefix


# MNN is in the `export` and `test` extras; without it, the rest still runs.
HAS_MNN = importlib.util.find_spec("MNN") is not None


@pytest.mark.slow
def test_export_every_format_then_evaluate_side_by_side(checkpoint, tmp_path):
  root, prefix = checkpoint
  export_dir = tmp_path / "export"
  mnn = ",mnn_float32,mnn_uint8" if HAS_MNN else ""
  result = run_app("export_model", *DEMO_MODEL_FLAGS, f"--checkpoint_path={prefix}",
                f"--export_path={export_dir}", "--crop_size=64,64",
                "--export_formats=saved_model,frozen_graph,tflite_float32,"
                f"tflite_float16,tflite_int8,onnx{mnn}",
                f"--representative_dataset_dir={root / 'tfrecord'}",
                "--num_representative_images=4")
  assert result.returncode == 0, result.stderr[-3000:]
  version = export_dir / "1"
  names = ["frozen_inference_graph.pb", "deeplab_float32.tflite",
           "deeplab_float16.tflite", "deeplab_int8.tflite", "deeplab.onnx"]
  names += ["deeplab_float32.mnn", "deeplab_uint8.mnn"] if HAS_MNN else []
  for name in names:
    assert (version / name).stat().st_size > 10_000
    assert f"{version / name}" in result.stdout  # Path and size printed.
  assert "saved_model" in result.stdout and " MB " in result.stdout
  assert os.listdir(export_dir) == ["1"]
  # The fixed-size formats' readers take the padding from it.
  assert checkpoints.read_model_config(str(version)).model_variant == (
      "mobilenet_v2")

  # The version exists: a clear error, before any slow conversion.
  again = run_app("export_model", *DEMO_MODEL_FLAGS, f"--checkpoint_path={prefix}",
               f"--export_path={export_dir}", "--export_version=1")
  assert_clear_error(again, "already exists", str(version))

  eval_dir = tmp_path / "eval"
  result = run_app("evaluate", *DEMO_MODEL_FLAGS,
                f"--dataset_dir={root / 'tfrecord'}",
                f"--checkpoint_dir={prefix}", f"--eval_logdir={eval_dir}",
                f"--model_path={version}",
                *[f"--model_path={version / n}" for n in names],
                "--save_predictions")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((eval_dir / "metrics.json").read_text())
  assert list(metrics["formats"]) == [
      "keras", "saved_model", "frozen_graph", "tflite_float32",
      "tflite_float16", "tflite_int8", "onnx"] + (
          ["mnn_float32", "mnn_uint8"] if HAS_MNN else [])
  assert metrics["checkpoint_path"] == prefix
  assert len(metrics["confusion_matrix"]) == 5
  for name, figures in metrics["formats"].items():
    assert figures["num_images"] == 3
    assert name in result.stdout  # The side-by-side table.
  keras_miou = metrics["formats"]["keras"]["miou"]
  for name in ("saved_model", "frozen_graph", "onnx", "tflite_float32",
               *(["mnn_float32"] if HAS_MNN else [])):
    assert metrics["formats"][name]["miou"] == pytest.approx(keras_miou,
                                                             abs=0.01)
  assert (eval_dir / "confusion_matrix.png").exists()
  assert (eval_dir / "per_class_iou.png").exists()
  assert len(os.listdir(eval_dir / "predictions" / "onnx")) == 6

  # A lean export (the default) has no probabilities to save.
  result = run_app("inference", "--dataset=demo", f"--model_path={version}",
                   f"--input={root / 'voc' / 'JPEGImages'}",
                   f"--output_dir={tmp_path / 'vis'}", "--save_probabilities")
  assert_clear_error(result, str(version), "--export_probabilities")


@pytest.mark.slow
def test_multiscale_full_image_checkpoint_evaluation(checkpoint, tmp_path):
  root, prefix = checkpoint
  eval_dir = tmp_path / "eval"
  result = run_app("evaluate", *DEMO_MODEL_FLAGS,
                f"--dataset_dir={root / 'tfrecord'}",
                f"--checkpoint_dir={prefix}", f"--eval_logdir={eval_dir}",
                "--eval_crop_size=", "--eval_scales=0.75",
                "--eval_scales=1.0", "--add_flipped_images")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((eval_dir / "metrics.json").read_text())
  assert metrics["num_images"] == 3 and metrics["global_step"] == 7
  assert metrics["num_pixels"] > 0
  assert (eval_dir / "per_class_iou.png").exists()


def test_bad_model_path_and_scales_are_named(checkpoint, tmp_path):
  root, prefix = checkpoint
  bogus = tmp_path / "model.h5"
  bogus.write_text("x")
  result = run_app("evaluate", *DEMO_MODEL_FLAGS,
                f"--dataset_dir={root / 'tfrecord'}",
                f"--model_path={bogus}", f"--eval_logdir={tmp_path / 'e'}")
  assert_clear_error(result, str(bogus), ".tflite")
  result = run_app("export_model", *DEMO_MODEL_FLAGS, f"--checkpoint_path={prefix}",
                f"--export_path={tmp_path / 'x'}",
                "--export_formats=tflite_int8", "--crop_size=64,64")
  assert_clear_error(result, "--representative_dataset_dir")


def test_evaluate_builds_the_model_saved_beside_the_checkpoint(checkpoint,
                                                               tmp_path):
  """A model trained with --decoder_output_stride=4 evaluates with no model
  flag at all (its model_config.json), to the same figures as the old
  checkpoint given the right flags; a contradicting flag is an error."""
  root, prefix = checkpoint
  data = [f"--dataset_dir={root / 'tfrecord'}", "--eval_crop_size=64,64"]
  results = []
  for name, args in (("flags", [*DEMO_MODEL_FLAGS,
                                f"--checkpoint_dir={prefix}"]),
                     ("config", ["--dataset=demo", "--checkpoint_dir="
                                 f"{root / 'configured'}"])):
    result = run_app("evaluate", *args, *data,
                     f"--eval_logdir={tmp_path / name}")
    assert result.returncode == 0, result.stderr[-3000:]
    results.append(json.loads((tmp_path / name / "metrics.json").read_text()))
  assert results[1]["confusion_matrix"] == results[0]["confusion_matrix"]
  assert results[1]["miou"] == results[0]["miou"] > 0

  result = run_app("evaluate", "--dataset=demo", "--decoder_output_stride=8",
                   f"--checkpoint_dir={root / 'configured'}", *data,
                   f"--eval_logdir={tmp_path / 'bad'}")
  assert_clear_error(result, "--decoder_output_stride=8",
                     "decoder_output_stride=4", "--override_model_config")


@pytest.mark.skipif(not HAS_MNN, reason="the mnn package is not installed")
def test_mnn_uint8_needs_calibration_images_and_one_scale():
  """Clear errors before any slow conversion (no model is touched)."""
  from deeplab import export_model  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="mnn_uint8 needs "
                     "--representative_dataset_dir"):
    export_model.make_writers(None, ["mnn_uint8"], (1.0,), False, (64, 64),
                              None, "train", 4)
  for scales, flipped in (((0.5, 1.0), False), ((1.0,), True)):
    with pytest.raises(ValueError, match="--inference_scales=1.0, no "
                       "--add_flipped_images"):
      export_model.make_writers(None, ["mnn_uint8"], scales, flipped,
                                (64, 64), "/data", "train", 4)
