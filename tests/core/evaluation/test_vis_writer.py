"""vis_writer: raw Cityscapes predictions, canvas checks (official vis.py)."""

import copy
import os

import numpy as np
from PIL import Image
import pytest

from deeplab.core.evaluation import vis_writer
from deeplab.datasets import colormaps


def _cityscapes_example(shared_fixtures, tmp_path):
  """The fixture's image and labelIds at 128x256; (name, image, trainIds)."""
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  folder = shared_fixtures / "cityscapes_mmseg"
  stem = "frankfurt_000000_000294"
  with Image.open(folder / "leftImg8bit/val/frankfurt" /
                  f"{stem}_leftImg8bit.png") as image:
    image = np.array(image.convert("RGB").resize((256, 128)))
  with Image.open(folder / "gtFine/val/frankfurt" /
                  f"{stem}_gtFine_labelIds.png") as gt:
    gt = gt.resize((256, 128), Image.NEAREST)
  gt_path = tmp_path / f"{stem}_gtFine_labelIds.png"
  gt.save(gt_path)
  to_train = np.full(256, 255, np.uint8)
  for label in cs_labels.labels:
    if 0 <= label.id < 256 and 0 <= label.trainId < 255:
      to_train[label.id] = label.trainId
  # The builder stores the name without `_leftImg8bit` (official too).
  return stem, image, to_train[np.array(gt)], str(gt_path)


def test_cityscapes_raw_predictions_are_label_ids(shared_fixtures, tmp_path):
  """Raw Cityscapes predictions are labelIds that cityscapesscripts scores."""
  from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval  # pylint: disable=g-import-not-at-top
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  stem, image, train_ids, gt_path = _cityscapes_example(shared_fixtures,
                                                        tmp_path)
  rng = np.random.default_rng(0)
  # A noisy prediction: the ground truth with 30% of pixels re-drawn.
  prediction = np.where(train_ids == 255, rng.integers(0, 19, train_ids.shape),
                        train_ids)
  noise = rng.random(train_ids.shape) < 0.3
  prediction[noise] = rng.integers(0, 19, int(noise.sum()))
  config = vis_writer.VisConfig(
      vis_dir=str(tmp_path / "vis"), colormap_type="cityscapes",
      also_save_raw_predictions=True,
      label_id_table=vis_writer.raw_label_table("cityscapes"))
  count = vis_writer.visualize_split(lambda images: [prediction],
                                     [(stem, image, train_ids)], config)
  assert count == 1

  raw_path = tmp_path / "vis" / "raw_segmentation_results" / f"{stem}.png"
  assert os.listdir(raw_path.parent) == [raw_path.name]
  with Image.open(raw_path) as raw:
    assert raw.mode == "L"
    raw = np.array(raw)
  to_label_id = np.array([cs_labels.trainId2label[t].id for t in range(19)])
  np.testing.assert_array_equal(raw, to_label_id[prediction])
  with Image.open(tmp_path / "vis" / "segmentation_results" /
                  "000000_prediction.png") as colored:
    np.testing.assert_array_equal(
        np.array(colored), colormaps.get_colormap("cityscapes")[prediction])

  # cityscapesscripts finds the file for its ground truth and scores it.
  args = copy.copy(cs_eval.args)
  args.evalInstLevelScore = False  # Crashes on NumPy 2.4 (np.in1d).
  args.JSONOutput = False
  args.quiet = True
  args.predictionPath = str(raw_path.parent)
  assert cs_eval.getPrediction(args, gt_path) == str(raw_path)
  scores = cs_eval.evaluateImgLists([str(raw_path)], [gt_path], args)
  evaluated = train_ids != 255
  for train_id in range(19):
    label = cs_labels.trainId2label[train_id]
    hit = prediction == train_id
    truth = train_ids == train_id
    union = ((hit & evaluated) | truth).sum()
    if union == 0:
      continue
    assert scores["classScores"][label.name] == pytest.approx(
        (hit & truth).sum() / union), label.name


def test_other_datasets_keep_raw_class_ids():
  assert vis_writer.raw_label_table("pascal_voc_seg") is None
  assert vis_writer.raw_label_table("ade20k") is None


def test_image_larger_than_the_canvas_is_a_clear_error():
  predict = vis_writer.make_batch_predictor(
      None, vis_writer.VisConfig(vis_dir="unused", crop_size=(8, 8)))
  with pytest.raises(ValueError, match="--vis_crop_size=8,8"):
    predict([np.zeros((9, 4, 3), np.uint8)])


def test_canvas_batches_run_as_eval_preprocessing_does(tiny_model_config):
  """Images of two sizes, padded to one canvas and batched, are predicted
  as evaluation's own preprocessing (pad with the mean pixel) would."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import testing_utils  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import preprocess  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
            rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)]
  model = deeplab_model.build_deeplab_model(tiny_model_config)
  testing_utils.make_predictions_nontrivial(model, images[:1])
  predict = vis_writer.make_batch_predictor(
      model, vis_writer.VisConfig(vis_dir="unused", crop_size=(33, 33),
                                  batch_size=2))
  labels = predict(images)
  for image, label in zip(images, labels):
    canvas, _ = preprocess.preprocess_image_and_label(
        image, None, 33, 33, is_training=False,
        mean_pixel=(127.5, 127.5, 127.5))  # mobilenet_v2's.
    logits = model(canvas[None], training=False)
    expected = tf.argmax(tf.raw_ops.ResizeBilinear(
        images=logits, size=[33, 33], align_corners=True), -1)[0].numpy()
    assert label.shape == image.shape[:2]
    np.testing.assert_array_equal(label, expected[:image.shape[0],
                                                  :image.shape[1]])
  assert len(np.unique(labels[0])) > 1
