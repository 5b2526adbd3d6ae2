"""inference.py helpers: input listing, image loading, PNG outputs."""

import numpy as np
from PIL import Image
import pytest

import deeplab.inference as inference
from deeplab.datasets import colormaps


def test_list_images_expands_folders_and_globs(tmp_path):
  for name in ("b.jpg", "a.png", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  assert inference.list_images([str(tmp_path)]) == [
      str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
  assert inference.list_images([str(tmp_path / "*.jpg")]) == [
      str(tmp_path / "b.jpg")]
  with pytest.raises(FileNotFoundError, match="nothing_here"):
    inference.list_images([str(tmp_path / "nothing_here*.jpg")])


@pytest.mark.parametrize("mode", ["L", "RGBA", "RGB"])
def test_load_rgb_converts_grayscale_and_rgba(tmp_path, mode):
  path = tmp_path / f"image_{mode}.png"
  Image.new(mode, (7, 5)).save(path)
  image = inference.load_rgb(str(path))
  assert image.shape == (5, 7, 3) and image.dtype == np.uint8


def test_load_rgb_names_a_non_image(tmp_path):
  bogus = tmp_path / "notes.jpg"
  bogus.write_text("not an image")
  with pytest.raises(ValueError, match="notes.jpg"):
    inference.load_rgb(str(bogus))


def test_palette_png_keeps_class_ids(tmp_path):
  labels = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)
  colormap = colormaps.create_pascal_label_colormap()
  path = tmp_path / "labels.png"
  inference.palette_png(labels, colormap).save(path)
  reread = Image.open(path)
  assert reread.mode == "P"
  np.testing.assert_array_equal(np.array(reread), labels)
  image = np.full((2, 3, 3), 100, np.uint8)
  blended = inference.overlay(image, labels, colormap, alpha=1.0)
  np.testing.assert_array_equal(blended[labels > 0], colormap[labels[labels > 0]])
  # Background (black in the VOC palette) leaves the image untouched.
  np.testing.assert_array_equal(blended[labels == 0], image[labels == 0])
