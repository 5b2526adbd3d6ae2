"""COCO builder against pycocotools' own masks."""

import logging

import numpy as np
from pycocotools import coco
import pytest

from deeplab.datasets import build_coco_data
from deeplab.datasets import build_data


def _expected_label(annotation_file, image_id, mapping):
  """Paints pycocotools' annToMask masks: objects in order, crowds last."""
  dataset = coco.COCO(str(annotation_file))
  info = dataset.imgs[image_id]
  label = np.zeros((info["height"], info["width"]), np.uint8)
  annotations = [a for a in dataset.imgToAnns[image_id]
                 if a["category_id"] in mapping and a["segmentation"]]
  for annotation in sorted(annotations, key=lambda a: a["iscrowd"]):
    value = 255 if annotation["iscrowd"] else mapping[annotation["category_id"]]
    label[dataset.annToMask(annotation).astype(bool)] = value
  return label


@pytest.mark.parametrize("label_set", ["coco", "voc", "person"])
def test_panopticapi_sample_matches_pycocotools(shared_fixtures, tmp_path,
                                                read_split, label_set):
  root = shared_fixtures / "coco_panopticapi"
  annotation_file = root / "panoptic_coco_detection_format.json"
  out = tmp_path / "records"
  build_coco_data.build_coco_dataset(
      str(annotation_file), str(root / "images"), str(out),
      split_name="val", label_set=label_set, num_shards=2)
  records = read_split(out, "val")
  assert list(records) == ["000000142238", "000000439180"]
  mapping = build_coco_data.LABEL_SETS[label_set][0]
  for key, image_id in (("000000142238", 142238), ("000000439180", 439180)):
    expected = _expected_label(annotation_file, image_id, mapping)
    np.testing.assert_array_equal(records[key][1], expected)
    assert len(np.unique(expected)) >= 3  # Background, objects, crowd.
  if label_set == "person":
    assert set(np.unique(records["000000439180"][1])) == {0, 1, 255}
  if label_set == "voc":
    assert set(np.unique(records["000000439180"][1])) == {0, 13, 15, 255}


def test_crowd_is_ignore_and_empty_segmentation_skipped(
    shared_fixtures, tmp_path, read_split, caplog):
  root = shared_fixtures / "datumaro/coco_instances"
  out = tmp_path / "records"
  with caplog.at_level(logging.WARNING):
    build_coco_data.build_coco_dataset(
        str(root / "annotations/instances_train.json"),
        str(root / "images/train"), str(out), split_name="train",
        num_shards=1)
  assert "empty segmentation" in caplog.text
  np.testing.assert_array_equal(read_split(out, "train")["a"][1],
                                np.zeros((5, 10), np.uint8))
  build_coco_data.build_coco_dataset(
      str(root / "annotations/instances_val.json"),
      str(root / "images/val"), str(out), split_name="val", num_shards=1)
  label = read_split(out, "val")["b"][1]
  # The uncompressed crowd RLE covers the first 20 pixels in column-major
  # order (2 columns of 10), over the polygon of category 1.
  expected = np.zeros((10, 5), np.uint8)
  expected[:, :2] = 255
  np.testing.assert_array_equal(label, expected)
  np.testing.assert_array_equal(
      label, _expected_label(root / "annotations/instances_val.json", 40,
                             build_coco_data.COCO_TO_CONTIGUOUS))


def test_json_size_differing_from_image_is_named(shared_fixtures, tmp_path):
  root = shared_fixtures / "coco_tfds_fake"
  with pytest.raises(build_data.InvalidExampleError,
                     match=r"COCO_val2017_000000000001\.jpg"):
    build_coco_data.build_coco_dataset(
        str(root / "instances_val2017.json"), str(root / "val2017"),
        str(tmp_path / "o"), split_name="val", label_set="coco")
  assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
