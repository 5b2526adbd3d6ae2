"""dataset_stats: pixel counts and class weights of a built split."""

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import build_voc2012_data
from deeplab.datasets import dataset_stats

VOC_NAMES = ("2011_000003", "2011_000006", "2011_000025")


def test_counts_match_the_label_pngs(labelme_voc, tmp_path):
  out = tmp_path / "records"
  build_voc2012_data.build_voc_dataset(
      str(labelme_voc / "JPEGImages"), str(labelme_voc / "SegmentationClass"),
      str(labelme_voc / "ImageSets/Segmentation"), str(out), num_shards=2)
  stats = dataset_stats.compute_stats(str(out), "train", 21, 255)
  labels = [np.array(Image.open(labelme_voc / "SegmentationClass" /
                                f"{n}.png")) for n in VOC_NAMES]
  expected = sum(np.bincount(l.ravel(), minlength=256) for l in labels)
  assert stats["num_images"] == 3
  np.testing.assert_array_equal(stats["pixel_counts"], expected[:21])
  assert stats["ignored_pixels"] == expected[255]
  assert stats["frequency"].sum() == pytest.approx(1.)
  present = expected[:21] > 0
  assert (stats["balanced"][~present] == 0).all()
  # Balanced weights undo the frequencies: weight * count is constant.
  products = stats["balanced"][present] * expected[:21][present]
  np.testing.assert_allclose(products, products[0])
  # Labels outside a too-small class set are counted and reported.
  narrow = dataset_stats.compute_stats(str(out), "train", 3, 255)
  assert {5, 15} <= set(narrow["out_of_range_values"])
  assert "2011_000003" in narrow["out_of_range_images"]
  assert narrow["out_of_range_pixels"] == expected[3:255].sum()
  assert "WARNING: labels outside [0, 3)" in dataset_stats.format_stats(
      narrow)
  assert "person" in dataset_stats.format_stats(
      stats, build_voc2012_data_class_names())


def build_voc2012_data_class_names():
  from deeplab.datasets import data_descriptors  # pylint: disable=g-import-not-at-top
  return data_descriptors.PASCAL_VOC_CLASS_NAMES
