"""Scoring folders of prediction PNGs: against cityscapesscripts, TFRecord
ground truth and the on-device confusion matrix; clear errors."""

import copy
import os
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab.core.evaluation import eval_loop
from deeplab.core.evaluation import metrics
from deeplab.core.evaluation import score_folder
from deeplab.datasets import build_cityscapes_data
from deeplab.datasets import data_descriptors
from deeplab.datasets import tfrecord_io

CITYSCAPES = data_descriptors.get_dataset_descriptor("cityscapes")
VOC = data_descriptors.get_dataset_descriptor("pascal_voc_seg")
FIXTURE_KEY = "frankfurt_000000_000294"


def _save(path, array, palette=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image = Image.fromarray(np.asarray(array, np.uint8),
                          mode="P" if palette is not None else "L")
  if palette is not None:
    image.putpalette(palette.flatten().tolist())
  image.save(path)


def _noisy(rng, truth, values, fraction=0.3):
  """`truth` with `fraction` of its pixels redrawn from `values`."""
  noise = rng.random(truth.shape) < fraction
  out = truth.copy()
  out[noise] = rng.choice(values, int(noise.sum()))
  return out


@pytest.fixture
def cityscapes_folders(shared_fixtures, tmp_path):
  """gtFine/val/<city>/*_labelIds.png (the real downscaled frame plus two
  generated ones) and labelId predictions, some of ids not evaluated."""
  rng = np.random.default_rng(0)
  gt_dir, pred_dir = tmp_path / "gtFine" / "val", tmp_path / "results"
  fixture = (shared_fixtures / "cityscapes_mmseg/gtFine/val/frankfurt" /
             f"{FIXTURE_KEY}_gtFine_labelIds.png")
  (gt_dir / "frankfurt").mkdir(parents=True)
  shutil.copy(fixture, gt_dir / "frankfurt" / fixture.name)
  truths = {FIXTURE_KEY: np.array(Image.open(fixture))}
  for key in ("lindau_000001_000019", "munster_000002_000019"):
    blocks = rng.integers(0, 34, (8, 16))  # Every labelId, void included.
    truths[key] = np.kron(blocks, np.ones((16, 16), np.int64))
    _save(gt_dir / key.split("_")[0] / f"{key}_gtFine_labelIds.png",
          truths[key])
    _save(gt_dir / key.split("_")[0] / f"{key}_gtFine_color.png",
          rng.integers(0, 255, (128, 256)))  # Not ground truth: not read.
  for key, truth in truths.items():
    # Predictions drawn from all 34 labelIds: 0..6, 9, 10, ... are not
    # evaluated and must count as misses, as in cityscapesscripts.
    _save(pred_dir / key.split("_")[0] / f"{key}_leftImg8bit.png",
          _noisy(rng, truth, np.arange(34)))
  return gt_dir, pred_dir, truths


def _cityscapesscripts(pred_dir, gt_dir):
  from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval  # pylint: disable=g-import-not-at-top
  gts = sorted(str(p) for p in gt_dir.rglob("*_gtFine_labelIds.png"))
  preds = [str(next(pred_dir.rglob(os.path.basename(g).replace(
      "_gtFine_labelIds", "_leftImg8bit")))) for g in gts]
  args = copy.copy(cs_eval.args)
  args.evalInstLevelScore = False  # Crashes on NumPy 2.4 (np.in1d).
  args.JSONOutput = False
  args.quiet = True
  return cs_eval.evaluateImgLists(preds, gts, args)


def test_cityscapes_folder_matches_cityscapesscripts(cityscapes_folders):
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  gt_dir, pred_dir, _ = cityscapes_folders
  ours = score_folder.score_predictions(str(pred_dir), CITYSCAPES,
                                        ground_truth_dir=str(gt_dir),
                                        num_threads=2)
  theirs = _cityscapesscripts(pred_dir, gt_dir)
  assert ours["num_images"] == 3
  assert sum(ours["unscored_predictions"]) > 0  # The miss path was taken.
  for train_id in range(19):
    expected = theirs["classScores"][cs_labels.trainId2label[train_id].name]
    got = ours["per_class_iou"][train_id]
    assert got == pytest.approx(expected, abs=1e-12), train_id
  assert ours["miou"] == pytest.approx(theirs["averageScoreClasses"],
                                       abs=1e-12)


def test_tfrecord_ground_truth_scores_like_the_folder(cityscapes_folders,
                                                      tmp_path):
  gt_dir, pred_dir, truths = cityscapes_folders
  to_train = build_cityscapes_data.label_id_to_train_id()
  dataset_dir = tmp_path / "tfrecord"
  dataset_dir.mkdir()
  path = tfrecord_io.shard_path(str(dataset_dir), "val_fine", 0, 1)
  with tf.io.TFRecordWriter(path) as writer:
    for key, truth in sorted(truths.items()):
      label = eval_loop._png_bytes(Image.fromarray(to_train[truth]))  # pylint: disable=protected-access
      writer.write(tfrecord_io.make_example(
          b"", key, *truth.shape, label).SerializeToString())
  from_split = score_folder.score_predictions(
      str(pred_dir), CITYSCAPES, dataset_dir=str(dataset_dir),
      split="val_fine", num_threads=1)
  from_folder = score_folder.score_predictions(
      str(pred_dir), CITYSCAPES, ground_truth_dir=str(gt_dir))
  assert from_split["confusion_matrix"] == from_folder["confusion_matrix"]
  assert (from_split["unscored_predictions"] ==
          from_folder["unscored_predictions"])
  assert from_split["miou"] == from_folder["miou"]


def test_voc_palette_folder_matches_device_confusion_matrix(tmp_path):
  rng = np.random.default_rng(1)
  palette = VOC.colormap
  expected = np.zeros((21, 21), np.int64)
  for index in range(4):
    truth = rng.integers(0, 21, (24, 40)).astype(np.uint8)
    truth[:, :3] = 255  # VOC's void border.
    prediction = _noisy(rng, np.where(truth == 255, 0, truth), np.arange(21))
    _save(tmp_path / "gt" / f"2007_{index:06d}.png", truth, palette)
    if index == 0:  # A colour PNG of the VOC palette is read back as ids.
      os.makedirs(tmp_path / "pred")
      Image.fromarray(palette[prediction]).save(
          tmp_path / "pred" / f"2007_{index:06d}.png")
    else:
      _save(tmp_path / "pred" / f"2007_{index:06d}.png", prediction, palette)
    expected += metrics.confusion_matrix_update(truth, prediction, 21,
                                                255).numpy()
  ours = score_folder.score_predictions(str(tmp_path / "pred"), VOC,
                                        ground_truth_dir=str(tmp_path / "gt"))
  assert ours["confusion_matrix"] == expected.tolist()
  assert ours["miou"] == metrics.metrics_from_confusion_matrix(
      expected)["miou"]


def test_train_id_predictions_and_overlays(cityscapes_folders, tmp_path):
  gt_dir, pred_dir, _ = cityscapes_folders
  to_train = build_cityscapes_data.label_id_to_train_id()
  train_dir = tmp_path / "train_ids"
  for path in pred_dir.rglob("*.png"):
    stem = path.name[:-len("_leftImg8bit.png")]
    # Named as --save_predictions names them, with its overlays beside.
    _save(train_dir / f"{stem}.png", to_train[np.array(Image.open(path))])
    Image.new("RGB", (256, 128)).save(train_dir / f"{stem}_overlay.png")
  from_train_ids = score_folder.score_predictions(
      str(train_dir), CITYSCAPES, ground_truth_dir=str(gt_dir),
      predictions_are_train_ids=True)
  from_label_ids = score_folder.score_predictions(
      str(pred_dir), CITYSCAPES, ground_truth_dir=str(gt_dir))
  for key in ("confusion_matrix", "unscored_predictions", "miou"):
    assert from_train_ids[key] == from_label_ids[key], key


@pytest.mark.parametrize("case, needle", [
    ("missing", "have no prediction"),
    ("extra", "have no ground truth"),
    ("size", "its ground truth"),
    ("value", "holds values [40]"),
    ("rgb", "mode 'RGB'"),
    ("badname", "<city>_<seq>_<frame>"),
])
def test_bad_folders_are_named(cityscapes_folders, case, needle):
  gt_dir, pred_dir, truths = cityscapes_folders
  victim = pred_dir / "lindau" / "lindau_000001_000019_leftImg8bit.png"
  if case == "missing":
    victim.unlink()
  elif case == "extra":
    _save(pred_dir / "ulm_000009_000019_leftImg8bit.png", np.zeros((4, 4)))
    victim = pred_dir / "ulm_000009_000019_leftImg8bit.png"
  elif case == "size":
    _save(victim, np.zeros((8, 8)))
  elif case == "value":
    _save(victim, np.full(truths["lindau_000001_000019"].shape, 40))
  elif case == "rgb":
    Image.new("RGB", (256, 128)).save(victim)
  elif case == "badname":
    victim = pred_dir / "prediction.png"
    _save(victim, np.zeros((4, 4)))
  with pytest.raises((ValueError, FileNotFoundError)) as error:
    score_folder.score_predictions(str(pred_dir), CITYSCAPES,
                                   ground_truth_dir=str(gt_dir))
  message = str(error.value)
  assert needle in message and "\n" not in message
  if case == "missing":
    assert "lindau_000001_000019_gtFine_labelIds.png" in message
  else:
    assert str(victim) in message


def _run_evaluate_without(modules, *flags):
  """`python -m deeplab.evaluate --dataset=cityscapes *flags` in a
  subprocess where importing any of `modules` fails."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from testing_utils import APP_ENV  # pylint: disable=g-import-not-at-top
  blocked = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
  code = ("import runpy, sys; " + blocked + "sys.argv[0] = 'evaluate'; "
          "runpy.run_module('deeplab.evaluate', run_name='__main__')")
  return subprocess.run(
      [sys.executable, "-c", code, "--dataset=cityscapes", *flags],
      capture_output=True, text=True, timeout=120, env=APP_ENV, check=False)


def test_evaluate_app_scores_a_folder_without_tensorflow(cityscapes_folders,
                                                         tmp_path):
  """`python -m deeplab.evaluate --predictions_dir` with TensorFlow and Keras
  made unimportable: the scoring path must never import them (start-up
  in about 1 s instead of 7)."""
  import json  # pylint: disable=g-import-not-at-top
  gt_dir, pred_dir, _ = cityscapes_folders
  result = _run_evaluate_without(("tensorflow", "keras"),
                                 f"--predictions_dir={pred_dir}",
                                 f"--ground_truth_dir={gt_dir}",
                                 f"--eval_logdir={tmp_path / 'eval'}")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(tmp_path / "eval" / "metrics.json") as f:
    written = json.load(f)
  ours = score_folder.score_predictions(str(pred_dir), CITYSCAPES,
                                        ground_truth_dir=str(gt_dir))
  assert written["miou"] == pytest.approx(ours["miou"], abs=1e-12)
  assert written["class_names"][0] == "road"
  assert os.path.isfile(tmp_path / "eval" / "confusion_matrix.png")


def test_app_without_plots_never_imports_matplotlib(cityscapes_folders,
                                                    tmp_path):
  """`--noeval_plots` writes metrics.json alone, with matplotlib blocked."""
  gt_dir, pred_dir, _ = cityscapes_folders
  result = _run_evaluate_without(("matplotlib", "tensorflow"),
                                 f"--predictions_dir={pred_dir}",
                                 f"--ground_truth_dir={gt_dir}",
                                 f"--eval_logdir={tmp_path / 'eval'}",
                                 "--noeval_plots")
  assert result.returncode == 0, result.stderr[-2000:]
  assert sorted(os.listdir(tmp_path / "eval")) == ["metrics.json"]


def test_accumulate_streams_with_bounded_work_in_flight():
  pulled, counted, backlog = [0], [0], []

  def pairs():
    for index in range(40):
      pulled[0] += 1
      yield index

  def count(index):
    backlog.append(pulled[0] - counted[0])
    counted[0] += 1
    joint = np.zeros((256, 256), np.int64)
    joint[index % 3, 0] = 1
    return joint

  joint, total = score_folder.accumulate(pairs(), count, num_threads=2)
  assert total == 40 and joint[:3, 0].tolist() == [14, 13, 13]
  assert max(backlog) <= 4  # 2 x num_threads, however many pairs.
