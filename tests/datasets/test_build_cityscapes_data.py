"""Cityscapes builder: labelIds -> trainIds with cityscapesscripts' table."""

import shutil

from cityscapesscripts.helpers import labels as cs_labels
import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import build_cityscapes_data
from deeplab.datasets import build_data

NAME = "frankfurt_000000_000294"


def _expected_train_ids(label_ids: np.ndarray) -> np.ndarray:
  expected = np.full(label_ids.shape, 255, np.uint8)
  for value in np.unique(label_ids):
    train_id = cs_labels.id2label[int(value)].trainId
    if 0 <= train_id < 255:
      expected[label_ids == value] = train_id
  return expected


@pytest.fixture
def cityscapes_root(shared_fixtures, tmp_path):
  root = tmp_path / "cityscapes"
  shutil.copytree(shared_fixtures / "cityscapes_mmseg", root)
  return root


def test_val_fine_is_pixel_exact(cityscapes_root, tmp_path, read_split):
  out = tmp_path / "records"
  summaries = build_cityscapes_data.build_cityscapes_dataset(
      str(cityscapes_root), str(out), num_shards=2)
  # Only val is present in the fixture.
  assert [s["split"] for s in summaries] == ["val_fine"]
  records = read_split(out, "val_fine")
  image, label, image_format = records[NAME]
  label_ids = np.array(Image.open(
      cityscapes_root / "gtFine/val/frankfurt" /
      f"{NAME}_gtFine_labelIds.png"))
  expected = _expected_train_ids(label_ids)
  assert len(np.unique(expected)) > 5
  np.testing.assert_array_equal(label, expected)
  # Images stay lossless PNG.
  assert image_format == "png"
  np.testing.assert_array_equal(image, np.array(Image.open(
      cityscapes_root / "leftImg8bit/val/frankfurt" /
      f"{NAME}_leftImg8bit.png")))


def test_bad_label_ids_and_missing_label_are_named(cityscapes_root,
                                                   tmp_path):
  label_path = (cityscapes_root / "gtFine/val/frankfurt" /
                f"{NAME}_gtFine_labelIds.png")
  ids = np.array(Image.open(label_path))
  ids[0, 0] = 200
  Image.fromarray(ids).save(label_path)
  with pytest.raises(build_data.InvalidExampleError,
                     match=rf"{NAME}_gtFine_labelIds\.png has labelIds "
                     r"\[200\]"):
    build_cityscapes_data.build_cityscapes_dataset(
        str(cityscapes_root), str(tmp_path / "o"))
  label_path.unlink()
  with pytest.raises(build_data.InvalidExampleError, match="has no label"):
    build_cityscapes_data.build_cityscapes_dataset(
        str(cityscapes_root), str(tmp_path / "o"))
  assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
  with pytest.raises(FileNotFoundError, match="--cityscapes_root"):
    build_cityscapes_data.build_cityscapes_dataset(
        str(cityscapes_root), str(tmp_path / "o"), splits=["train_fine"])


def test_official_archive_layout_and_coarse(shared_fixtures, tmp_path,
                                            read_split):
  """The unpacked official zips (tfds' fake copies: all-zero 2048x1024
  labelIds, i.e. 'unlabeled' -> 255) give the three fine splits; gtCoarse
  files give train_coarse."""
  root = tmp_path / "cityscapes"
  for name in ("leftImg8bit", "gtFine"):
    shutil.unpack_archive(
        shared_fixtures / f"cityscapes_tfds_fake/{name}_trainvaltest.zip",
        root)
  coarse = root / "gtCoarse/train"
  for city_dir in (root / "gtFine/train").iterdir():
    (coarse / city_dir.name).mkdir(parents=True)
    for path in city_dir.glob("*_gtFine_labelIds.png"):
      shutil.copy(path, coarse / city_dir.name /
                  path.name.replace("gtFine", "gtCoarse"))
  (root / "leftImg8bit/train_extra").mkdir()
  out = tmp_path / "records"
  summaries = build_cityscapes_data.build_cityscapes_dataset(
      str(root), str(out), include_coarse=True, num_shards=1)
  assert {s["split"]: s["num_examples"] for s in summaries} == {
      "train_fine": 3, "val_fine": 1, "test_fine": 2, "train_coarse": 3}
  records = read_split(out, "test_fine")
  assert sorted(records) == ["berlin_000000_000019",
                             "bielefeld_000000_000321"]
  for _, label, _ in records.values():
    assert label.shape == (1024, 2048) and (label == 255).all()


def test_label_train_ids_are_read_as_they_are(shared_fixtures, tmp_path,
                                              read_split):
  root = shared_fixtures / "cityscapes_mmseg"
  out = tmp_path / "records"
  build_cityscapes_data.build_cityscapes_dataset(
      str(root), str(out), num_shards=1, label_type="labelTrainIds")
  np.testing.assert_array_equal(
      read_split(out, "val_fine")[NAME][1],
      np.array(Image.open(root / "gtFine/val/frankfurt" /
                          f"{NAME}_gtFine_labelTrainIds.png")))
  # datumaro's Cityscapes export uses 19 for background: rejected, named.
  with pytest.raises(build_data.InvalidExampleError,
                     match=r"defaultcity_000001_000019_gtFine_labelTrainIds"
                     r"\.png has values \[19\]"):
    build_cityscapes_data.build_cityscapes_dataset(
        str(shared_fixtures / "datumaro/cityscapes_train_dataset"),
        str(tmp_path / "o"), splits=["val_fine"],
        label_type="labelTrainIds")
