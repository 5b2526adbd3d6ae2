"""VOC builder with SBD: train_aug composition, pixel-exact SBD labels."""

import shutil

import numpy as np
from PIL import Image
import pytest
import scipy.io

from deeplab.datasets import build_data
from deeplab.datasets import build_voc2012_data

VOC_NAMES = ("2011_000003", "2011_000006", "2011_000025")
SBD_NAMES = ("2008_000051", "2008_000195")


def _sbd_mat(root, name):
  return scipy.io.loadmat(str(root / "cls" / f"{name}.mat"), squeeze_me=True,
                          struct_as_record=False)["GTcls"].Segmentation


def test_train_aug_is_voc_train_plus_sbd_minus_voc_val(
    labelme_voc, shared_fixtures, tmp_path, read_split):
  sbd = shared_fixtures / "sbd_pyedgeeval" / "dataset"
  lists = labelme_voc / "ImageSets" / "Segmentation"
  # VOC val holds one SBD image: it must not enter train_aug.
  (lists / "val.txt").write_text(f"{SBD_NAMES[1]}\n")
  out = tmp_path / "records"
  summaries = build_voc2012_data.build_voc_dataset(
      image_folder=str(labelme_voc / "JPEGImages"),
      semantic_segmentation_folder=str(labelme_voc / "SegmentationClass"),
      list_folder=str(lists), output_dir=str(out), splits=["train"],
      sbd_root=str(sbd), num_shards=2, num_workers=2)
  assert [s["split"] for s in summaries] == ["train", "train_aug"]
  records = read_split(out, "train_aug")
  assert list(records) == list(VOC_NAMES) + [SBD_NAMES[0]]
  for name in VOC_NAMES:
    expected = np.array(Image.open(labelme_voc / "SegmentationClass" /
                                   f"{name}.png"))
    np.testing.assert_array_equal(records[name][1], expected)
  image, label, image_format = records[SBD_NAMES[0]]
  expected = _sbd_mat(sbd, SBD_NAMES[0])
  assert expected.dtype == np.uint8 and expected.max() > 0
  np.testing.assert_array_equal(label, expected)
  assert image.shape[:2] == expected.shape and image_format == "jpeg"
  # The SBD JPEG is stored byte for byte.
  jpeg = Image.open(sbd / "img" / f"{SBD_NAMES[0]}.jpg")
  assert jpeg.size == (expected.shape[1], expected.shape[0])


def test_train_aug_errors_name_the_sbd_files(labelme_voc, shared_fixtures,
                                             tmp_path):
  sbd = tmp_path / "sbd"
  shutil.copytree(shared_fixtures / "sbd_pyedgeeval" / "dataset", sbd)
  lists = labelme_voc / "ImageSets" / "Segmentation"
  (lists / "val.txt").write_text("")
  args = dict(
      image_folder=str(labelme_voc / "JPEGImages"),
      semantic_segmentation_folder=str(labelme_voc / "SegmentationClass"),
      list_folder=str(lists), output_dir=str(tmp_path / "o"),
      splits=["train"], sbd_root=str(sbd))
  (sbd / "cls" / f"{SBD_NAMES[1]}.mat").write_bytes(b"not a mat file")
  with pytest.raises(build_data.InvalidExampleError,
                     match=rf"{SBD_NAMES[1]}\.mat"):
    build_voc2012_data.build_voc_dataset(**args)
  assert not list((tmp_path / "o").glob("train_aug*"))
  (sbd / "val.txt").unlink()
  with pytest.raises(FileNotFoundError, match=r"--sbd_root.*val\.txt"):
    build_voc2012_data.build_voc_dataset(**args)
