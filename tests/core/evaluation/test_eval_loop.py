"""Per-image evaluation: official evaluators agree, outputs are written."""

import copy
import os

import numpy as np
from PIL import Image
import pytest

from deeplab.core import config as config_lib
from deeplab.core.evaluation import eval_loop
from deeplab.core.evaluation import metrics
from deeplab.core.export import predictors
from deeplab.datasets import tfrecord_io


class _TablePredictor(predictors.Predictor):
  """Returns a fixed prediction per image (an evaluator under test)."""

  name = "table"

  def __init__(self, predictions):
    self._predictions = iter(predictions)

  def __call__(self, image):
    labels = next(self._predictions)
    assert labels.shape == image.shape[:2]
    return labels.astype(np.int32), None


def _cityscapes_example(shared_fixtures):
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  folder = shared_fixtures / "cityscapes_mmseg"
  stem = "frankfurt_000000_000294"
  image = np.array(Image.open(
      folder / "leftImg8bit/val/frankfurt" / f"{stem}_leftImg8bit.png"
  ).convert("RGB"))
  gt_path = folder / "gtFine/val/frankfurt" / f"{stem}_gtFine_labelIds.png"
  label_ids = np.array(Image.open(gt_path))
  to_train = np.full(256, 255, np.uint8)
  for label in cs_labels.labels:
    if 0 <= label.id < 256 and 0 <= label.trainId < 255:
      to_train[label.id] = label.trainId
  return f"{stem}_leftImg8bit", image, to_train[label_ids], str(gt_path)


def test_cityscapes_results_match_cityscapesscripts(shared_fixtures, tmp_path):
  from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval  # pylint: disable=g-import-not-at-top
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  name, image, train_ids, gt_path = _cityscapes_example(shared_fixtures)
  rng = np.random.default_rng(0)
  # A noisy prediction: the ground truth with 30% of pixels re-drawn.
  prediction = np.where(train_ids == 255, rng.integers(0, 19, train_ids.shape),
                        train_ids)
  noise = rng.random(train_ids.shape) < 0.3
  prediction[noise] = rng.integers(0, 19, int(noise.sum()))
  results_dir = tmp_path / "cityscapes_results"
  ours = eval_loop.evaluate_predictor(
      _TablePredictor([prediction]), [(name, image, train_ids)],
      num_classes=19, ignore_label=255,
      cityscapes_results_dir=str(results_dir))
  written = results_dir / f"{name}.png"
  assert sorted(os.listdir(results_dir)) == [written.name]

  args = copy.copy(cs_eval.args)
  args.evalInstLevelScore = False  # Crashes on NumPy 2.4 (np.in1d).
  args.JSONOutput = False
  args.quiet = True
  theirs = cs_eval.evaluateImgLists([str(written)], [gt_path], args)
  for train_id in range(19):
    label = cs_labels.trainId2label[train_id]
    expected = theirs["classScores"][label.name]
    got = ours["per_class_iou"][train_id]
    if np.isnan(expected):
      assert got is None, label.name
    else:
      assert got == pytest.approx(expected, abs=1e-6), label.name


def test_ade20k_devkit_sample_scored_against_itself(shared_fixtures):
  folder = shared_fixtures / "ade20k_sceneparsing"
  names = sorted(os.listdir(folder / "annotations" / "validation"))
  assert len(names) == 3
  examples, labels = [], []
  for name in names:
    label = np.array(Image.open(folder / "annotations" / "validation" / name))
    image = np.zeros(label.shape + (3,), np.uint8)
    examples.append((name, image, label))
    labels.append(label)
  # ADE20K: 150 classes plus "other" (0), the ignore label. The devkit's
  # sample predictions are its annotations: scored, they give mIoU 1.
  predictions = [np.array(Image.open(folder / "predictions" / n))
                 for n in names]
  results = eval_loop.evaluate_predictor(
      _TablePredictor(predictions), examples, num_classes=151, ignore_label=0)
  assert results["miou"] == 1.0
  assert results["pixel_accuracy"] == 1.0
  assert results["num_pixels"] == sum(int((l != 0).sum()) for l in labels)

  # Shifted by a few pixels, they score below 1, as a pixel count says.
  shifted = [np.roll(p, 7, axis=1) for p in predictions]
  scored = eval_loop.evaluate_predictor(
      _TablePredictor(shifted), examples, 151, 0)
  gt = np.concatenate([l.ravel() for l in labels])
  pred = np.concatenate([p.ravel() for p in shifted])
  keep = gt != 0
  assert scored["pixel_accuracy"] == pytest.approx(
      np.mean(gt[keep] == pred[keep]), abs=1e-12)
  assert 0.0 < scored["miou"] < 1.0


def test_vis_outputs_are_palette_pngs_and_overlays(tmp_path):
  labels = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
  image = np.full((2, 3, 3), 90, np.uint8)
  eval_loop.evaluate_predictor(
      _TablePredictor([labels]), [("dir/img_7.jpg", image, labels)], 5, 255,
      vis_dir=str(tmp_path))
  written = Image.open(tmp_path / "img_7.png")
  assert written.mode == "P"
  np.testing.assert_array_equal(np.array(written),
                                np.where(labels == 255, 255, labels))
  assert Image.open(tmp_path / "img_7_overlay.png").size == (3, 2)


def test_a_wrong_prediction_size_is_named():
  image = np.zeros((4, 5, 3), np.uint8)

  class Bad(predictors.Predictor):
    name = "bad"

    def __call__(self, image):
      return np.zeros((2, 2), np.int32), None

  with pytest.raises(ValueError, match="bad predicted.*x.png"):
    eval_loop.evaluate_predictor(Bad(), [("x.png", image,
                                            np.zeros((4, 5)))], 3, 255)


def test_full_image_input_keeps_every_image_size(tmp_path):
  import io  # pylint: disable=g-import-not-at-top
  sizes = [(20, 30), (33, 17)]
  writer_path = tfrecord_io.shard_path(str(tmp_path), "val", 0, 1)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.TFRecordWriter(writer_path) as writer:
    for index, (height, width) in enumerate(sizes):
      buffer = io.BytesIO()
      Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
      label = io.BytesIO()
      Image.fromarray(np.full((height, width), index, np.uint8)).save(
          label, "PNG")
      writer.write(tfrecord_io.make_example(
          buffer.getvalue(), f"im{index}", height, width,
          label.getvalue(), image_format="png").SerializeToString())
  data_config = config_lib.DataConfig(dataset_dir=str(tmp_path), split="val",
                                      is_training=False)
  batches = list(eval_loop.full_image_input_fn(data_config)())
  assert [tuple(f["image"].shape) for f, _ in batches] == [
      (1, h, w, 3) for h, w in sizes]
  assert [int(l.numpy().max()) for _, l in batches] == [0, 1]
  examples = list(eval_loop.iter_examples(str(tmp_path), "val"))
  assert [e[0] for e in examples] == ["im0", "im1"]
  confusion = metrics.confusion_matrix_update(examples[1][2], examples[1][2],
                                              2, 255).numpy()
  assert confusion[1, 1] == 33 * 17
