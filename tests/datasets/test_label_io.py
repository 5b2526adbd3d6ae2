"""Reading label images as class ids: palette, greyscale, RGB, bad modes."""

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import colormaps
from deeplab.datasets import label_io


def _ids(shape=(6, 9), seed=0):
  ids = np.random.default_rng(seed).integers(0, 21, shape).astype(np.uint8)
  ids[0, :3] = 255
  return ids


def test_palette_png_gives_indices_not_colours(tmp_path):
  ids = _ids()
  path = tmp_path / "p.png"
  label_io.write_palette_png(ids, str(path))
  assert Image.open(path).mode == "P"
  np.testing.assert_array_equal(label_io.read_label_png(str(path)), ids)


def test_greyscale_png(tmp_path):
  ids = _ids()
  Image.fromarray(ids).save(tmp_path / "l.png")
  np.testing.assert_array_equal(
      label_io.read_label_png(str(tmp_path / "l.png")), ids)


def test_rgb_png_is_mapped_through_palette(tmp_path):
  ids = _ids()
  rgb = colormaps.create_pascal_label_colormap()[ids]
  Image.fromarray(rgb).save(tmp_path / "rgb.png")
  np.testing.assert_array_equal(
      label_io.read_label_png(str(tmp_path / "rgb.png")), ids)


def test_rgb_unknown_colour_names_file_and_colour(tmp_path):
  rgb = np.zeros((4, 4, 3), np.uint8)
  rgb[1, 1] = (1, 2, 3)
  path = tmp_path / "odd.png"
  Image.fromarray(rgb).save(path)
  with pytest.raises(ValueError, match=r"odd\.png.*\(1, 2, 3\)"):
    label_io.read_label_png(str(path))


def test_datumaro_rgb_label_fixture(shared_fixtures):
  path = (shared_fixtures /
          "datumaro/voc_dataset1/SegmentationClass/2007_000001.png")
  assert Image.open(path).mode == "RGB"
  ids = label_io.read_label_png(str(path))
  rgb = np.array(Image.open(path))
  # Pixel-exact: every id's palette colour is the file's colour.
  np.testing.assert_array_equal(
      colormaps.create_pascal_label_colormap()[ids], rgb)


def test_16_bit_png_is_rejected(tmp_path):
  path = tmp_path / "deep.png"
  Image.fromarray(np.full((3, 3), 300, np.uint16)).save(path)
  with pytest.raises(ValueError, match=r"deep\.png.*I;16"):
    label_io.read_label_png(str(path))


def test_jpeg_label_is_rejected(tmp_path):
  path = tmp_path / "lossy.jpg"
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
  with pytest.raises(ValueError, match=r"lossy\.jpg.*JPEG"):
    label_io.read_label_png(str(path))


def test_missing_label_names_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothere.png"):
    label_io.read_label_png(str(tmp_path / "nothere.png"))


def test_encode_label_png_is_single_channel_index(tmp_path):
  ids = _ids()
  data = label_io.encode_label_png(ids)
  path = tmp_path / "e.png"
  path.write_bytes(data)
  image = Image.open(path)
  assert image.mode == "L"
  np.testing.assert_array_equal(np.array(image), ids)
