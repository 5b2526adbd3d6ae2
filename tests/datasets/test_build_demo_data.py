"""The demo generator: deterministic, VOC layout, learnable but not trivial."""

import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import build_demo_data
from deeplab.datasets import colormaps


def _files(root: pathlib.Path):
  return {str(p.relative_to(root)): p.read_bytes()
          for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
  root = tmp_path_factory.mktemp("demo") / "a"
  info = build_demo_data.generate_demo_dataset(
      str(root), num_train=6, num_val=3, image_size=64, seed=3)
  return root, info


def test_same_seed_same_bytes(small_demo, tmp_path):
  root, _ = small_demo
  build_demo_data.generate_demo_dataset(
      str(tmp_path / "b"), num_train=6, num_val=3, image_size=64, seed=3)
  assert _files(root) == _files(tmp_path / "b")
  build_demo_data.generate_demo_dataset(
      str(tmp_path / "c"), num_train=6, num_val=3, image_size=64, seed=4)
  other = _files(tmp_path / "c")
  assert other.keys() == _files(root).keys()
  assert other["JPEGImages/train_000000.jpg"] != (
      root / "JPEGImages/train_000000.jpg").read_bytes()


def test_voc_layout(small_demo):
  root, info = small_demo
  assert info["splits_to_sizes"] == {"train": 6, "val": 3}
  lists = root / "ImageSets" / "Segmentation"
  train = (lists / "train.txt").read_text().split()
  val = (lists / "val.txt").read_text().split()
  assert len(train) == 6 and len(val) == 3 and not set(train) & set(val)
  for name in train + val:
    image = Image.open(root / "JPEGImages" / f"{name}.jpg")
    assert image.format == "JPEG" and image.size == (64, 64)
    assert (root / "SegmentationClass" / f"{name}.png").is_file()
  assert (root / "class_names.txt").read_text().split()[0] == "background"
  # Nothing else (no temporary folder) next to it.
  assert [p.name for p in root.parent.iterdir()] == ["a"]


def test_labels_are_voc_palette_pngs_with_void_borders(small_demo):
  root, _ = small_demo
  palette = colormaps.create_pascal_label_colormap().ravel().tolist()
  values = set()
  for path in sorted((root / "SegmentationClass").glob("*.png")):
    label = Image.open(path)
    assert label.mode == "P"
    assert label.getpalette()[:768] == palette
    ids = np.array(label)
    values |= set(np.unique(ids).tolist())
  assert values <= {0, 1, 2, 3, 4, 255}
  assert 255 in values and 0 in values
  assert len(values - {0, 255}) >= 3


def test_not_solvable_by_colour_or_position():
  """Each class shows up in many colours and places; a per-pixel colour
  classifier (nearest class-mean colour) does poorly."""
  images, labels = [], []
  for i in range(24):
    rng = build_demo_data.example_rng(0, "train", i)
    image, label = build_demo_data.generate_example(rng, 64)
    images.append(image)
    labels.append(label)
  pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(float)
  ids = np.concatenate([lb.ravel() for lb in labels])
  keep = ids != 255
  pixels, ids = pixels[keep], ids[keep]
  means = np.stack([pixels[ids == c].mean(0) for c in range(5)])
  predicted = np.argmin(((pixels[:, None] - means[None]) ** 2).sum(-1), 1)
  confusion = np.bincount(ids * 5 + predicted, minlength=25).reshape(5, 5)
  iou = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) -
                              np.diag(confusion))
  assert iou.mean() < 0.45, iou
  for class_id in range(1, 5):
    colours, centres = [], []
    for image, label in zip(images, labels):
      mask = label == class_id
      if mask.sum() > 20:
        colours.append(image[mask].mean(0))
        centres.append(np.argwhere(mask).mean(0))
    assert len(colours) >= 4, class_id
    assert np.std(colours, axis=0).max() > 10, class_id  # Colour varies.
    assert np.std(centres, axis=0).min() > 5, class_id  # Position varies.


def test_existing_output_dir_needs_overwrite(small_demo):
  root, _ = small_demo
  with pytest.raises(FileExistsError, match=str(root)):
    build_demo_data.generate_demo_dataset(str(root), 1, 1, 64, 0)


def test_cli(tmp_path):
  out = tmp_path / "cli"
  subprocess.run(
      [sys.executable, "-m", "deeplab.datasets.build_demo_data",
       f"--output_dir={out}", "--num_train=2", "--num_val=1",
       "--image_size=32", "--seed=7"],
      check=True, capture_output=True, timeout=120)
  assert len(list((out / "JPEGImages").glob("*.jpg"))) == 3
