"""ADE20K builder on the official SceneParsing sample."""

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import build_ade20k_data
from deeplab.datasets import build_data

NAMES = ("ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003")


def test_val_is_pixel_exact(shared_fixtures, tmp_path, read_split):
  root = shared_fixtures / "ade20k_sceneparsing"
  out = tmp_path / "records"
  summaries = build_ade20k_data.build_ade20k_dataset(
      "", "", str(root / "images/validation"),
      str(root / "annotations/validation"), str(out), num_shards=2)
  assert [s["split"] for s in summaries] == ["val"]
  records = read_split(out, "val")
  assert list(records) == list(NAMES)
  for name in NAMES:
    expected = np.array(Image.open(root / "annotations/validation" /
                                   f"{name}.png"))
    np.testing.assert_array_equal(records[name][1], expected)
    assert records[name][0].shape[:2] == expected.shape


def test_values_above_150_are_rejected(shared_fixtures, tmp_path):
  root = shared_fixtures / "ade20k_sceneparsing"
  labels = tmp_path / "labels"
  labels.mkdir()
  for name in NAMES:
    ids = np.array(Image.open(root / "annotations/validation" /
                              f"{name}.png"))
    if name == NAMES[1]:
      ids[0, 0] = 151
    Image.fromarray(ids).save(labels / f"{name}.png")
  with pytest.raises(build_data.InvalidExampleError,
                     match=rf"{NAMES[1]}\.png has values \[151\]"):
    build_ade20k_data.build_ade20k_dataset(
        None, None, str(root / "images/validation"), str(labels),
        str(tmp_path / "o"))
  with pytest.raises(FileNotFoundError, match="--train_image_folder"):
    build_ade20k_data.build_ade20k_dataset(
        str(tmp_path / "missing"), str(labels),
        str(root / "images/validation"), str(labels), str(tmp_path / "o"))
  assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
