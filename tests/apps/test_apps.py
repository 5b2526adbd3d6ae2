"""The absl apps end to end, as a user runs them (in subprocesses).

One slow test walks the whole job on a small demo dataset: build, train,
evaluate, export, infer. The others check that bad
input gets one clear error line naming what is wrong.
"""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from testing_utils import APP_ENV
from testing_utils import assert_clear_error
from testing_utils import build_demo_tfrecords
from testing_utils import DEMO_MODEL_FLAGS
from testing_utils import run_app

@pytest.fixture(scope="module")
def demo_tfrecords(tmp_path_factory):
  return build_demo_tfrecords(tmp_path_factory.mktemp("demo"))


def _train_args(data_root, logdir, steps):
  return [*DEMO_MODEL_FLAGS, f"--dataset_dir={data_root / 'tfrecord'}",
          f"--train_logdir={logdir}", "--train_crop_size=64,64",
          "--train_batch_size=4", f"--training_number_of_steps={steps}",
          "--optimizer=adam", "--base_learning_rate=0.001",
          "--save_interval_steps=2", "--log_steps=1",
          "--image_summary_steps=4"]


@pytest.mark.slow
def test_train_evaluate_export_infer(demo_tfrecords, tmp_path):
  """The README workflow through the apps. Kills and resumes are covered by
  test_train_app.py and test_reliability.py; model flags that contradict a
  checkpoint's model_config.json by test_checkpoints.py (the merge) and
  test_export_eval_apps.py (through common_flags.model_config_for_checkpoint,
  which train and evaluate share)."""
  logdir = tmp_path / "train"
  target = 4
  result = run_app("train", *_train_args(demo_tfrecords, logdir, target))
  assert result.returncode == 0, result.stderr[-3000:]
  assert (logdir / f"ckpt-{target}.index").exists()
  # Rerun on a finished train_logdir: nothing to do, nothing rewritten.
  before = sorted(os.listdir(logdir))
  result = run_app("train", *_train_args(demo_tfrecords, logdir, target))
  assert result.returncode == 0 and "nothing to train" in result.stderr
  assert sorted(n for n in os.listdir(logdir) if "events" not in n) == sorted(
      n for n in before if "events" not in n)

  eval_dir = tmp_path / "eval"
  result = run_app("evaluate", *DEMO_MODEL_FLAGS,
                f"--dataset_dir={demo_tfrecords / 'tfrecord'}",
                f"--checkpoint_dir={logdir}", f"--eval_logdir={eval_dir}",
                "--eval_crop_size=64,64", "--eval_batch_size=2")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((eval_dir / "metrics.json").read_text())
  for key in ("miou", "fwiou", "pixel_accuracy", "mean_pixel_accuracy",
              "per_class_iou", "num_images"):
    assert key in metrics
  assert metrics["num_images"] == 4
  assert len(metrics["per_class_iou"]) == 5
  assert metrics["global_step"] == target

  # No model flag (not even --dataset: 21 classes): the model is built from
  # model_config.json, so its predictions are the demo's 5 classes.
  export_dir = tmp_path / "export"
  result = run_app("export_model", f"--checkpoint_path={logdir}",
                   f"--export_path={export_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.listdir(export_dir) == ["1"]
  assert (export_dir / "1" / "saved_model.pb").exists()
  image = demo_tfrecords / "voc" / "JPEGImages" / "val_000000.jpg"
  vis_dir = tmp_path / "vis"
  result = run_app("inference", "--dataset=demo", f"--model_path={export_dir}",
                f"--input={image}", f"--output_dir={vis_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  labels = Image.open(vis_dir / "val_000000.png")
  assert labels.mode == "P" and labels.size == Image.open(image).size
  assert np.array(labels).max() < 5
  assert Image.open(vis_dir / "val_000000_overlay.png").size == labels.size


def test_missing_dataset_dir_is_named(tmp_path):
  missing = tmp_path / "no_such_folder"
  result = run_app("train", *DEMO_MODEL_FLAGS, f"--dataset_dir={missing}",
                f"--train_logdir={tmp_path / 'train'}")
  assert_clear_error(result, str(missing))
  assert not (tmp_path / "train").exists()


def test_split_without_shards_is_named(demo_tfrecords, tmp_path):
  result = run_app("train", *DEMO_MODEL_FLAGS,
                f"--dataset_dir={demo_tfrecords / 'tfrecord'}",
                "--train_split=trainval", f"--train_logdir={tmp_path / 't'}")
  assert_clear_error(result, "trainval")


def test_unknown_model_variant_is_named(demo_tfrecords, tmp_path):
  result = run_app("train", "--dataset=demo", "--model_variant=resnet_v9",
                f"--dataset_dir={demo_tfrecords / 'tfrecord'}",
                f"--train_logdir={tmp_path / 't'}")
  assert_clear_error(result, "resnet_v9", "mobilenet_v2")


def test_evaluate_without_checkpoint_is_named(demo_tfrecords, tmp_path):
  empty = tmp_path / "empty_logdir"
  empty.mkdir()
  result = run_app("evaluate", *DEMO_MODEL_FLAGS,
                f"--dataset_dir={demo_tfrecords / 'tfrecord'}",
                f"--checkpoint_dir={empty}",
                f"--eval_logdir={tmp_path / 'eval'}")
  assert_clear_error(result, str(empty))
  assert not (tmp_path / "eval" / "metrics.json").exists()


def test_custom_dataset_needs_num_classes(demo_tfrecords, tmp_path):
  result = run_app("train", "--dataset=custom",
                f"--dataset_dir={demo_tfrecords / 'tfrecord'}",
                f"--train_logdir={tmp_path / 't'}")
  assert_clear_error(result, "--num_classes")


@pytest.mark.parametrize("script,flag", [("deeplab-train", "--train_logdir"),
                                         ("deeplab-export", "--export_path")])
def test_console_scripts_run_the_apps(script, flag):
  path = os.path.join(os.path.dirname(sys.executable), script)
  assert os.path.exists(path), f"{script} not installed: pip install -e ."
  result = subprocess.run([path, "--help"], capture_output=True, text=True,
                          timeout=120, env=APP_ENV, check=False)
  # absl's --help exits with status 1 by design; the flags must be listed.
  assert flag in result.stdout + result.stderr
  assert "--model_variant" in result.stdout + result.stderr
