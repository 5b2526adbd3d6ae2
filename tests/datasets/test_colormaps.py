"""Colormaps: the VOC palette, Cityscapes colours, colorize_label."""

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import colormaps


def test_pascal_palette_known_entries():
  cmap = colormaps.create_pascal_label_colormap()
  assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
  np.testing.assert_array_equal(cmap[:4], [[0, 0, 0], [128, 0, 0],
                                           [0, 128, 0], [128, 128, 0]])
  np.testing.assert_array_equal(cmap[15], [192, 128, 128])  # person
  np.testing.assert_array_equal(cmap[255], [224, 224, 192])  # void
  assert len({tuple(c) for c in cmap}) == 256


def test_pascal_palette_matches_imgviz():
  imgviz = pytest.importorskip("imgviz")
  np.testing.assert_array_equal(colormaps.create_pascal_label_colormap(),
                                imgviz.label_colormap())


def test_cityscapes_colors_match_cityscapesscripts():
  labels = pytest.importorskip("cityscapesscripts.helpers.labels")
  cmap = colormaps.create_cityscapes_label_colormap()
  for label in labels.labels:
    if 0 <= label.trainId < 19:
      np.testing.assert_array_equal(cmap[label.trainId], label.color)


def test_ade20k_is_the_official_palette():
  """Equal to official get_dataset_colormap.create_ade20k_label_colormap,
  read from ../shared/official_deeplab (parsed, not imported: TF1 code)."""
  import ast  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(__file__).resolve().parents[3] / "shared"
  found = sorted(root.glob("official_deeplab/**/get_dataset_colormap.py"))
  if not found:
    pytest.skip("../shared/official_deeplab not found")
  function = next(node for node in ast.parse(found[0].read_text()).body
                  if getattr(node, "name", "") ==
                  "create_ade20k_label_colormap")
  returned = next(node for node in ast.walk(function)
                  if isinstance(node, ast.Return))
  official = np.array(ast.literal_eval(returned.value.args[0]))
  cmap = colormaps.create_ade20k_label_colormap()
  assert official.shape == (151, 3)
  np.testing.assert_array_equal(cmap[:151], official)
  assert not cmap[151:].any()


def test_colormaps_are_fresh_copies():
  cmap = colormaps.create_pascal_label_colormap()
  cmap[1] = 7
  assert colormaps.create_pascal_label_colormap()[1, 0] == 128


def test_colorize_label_maps_ids_and_out_of_range():
  cmap = colormaps.create_cityscapes_label_colormap()[:19]
  label = np.array([[0, 18], [255, -1]])
  out = colormaps.colorize_label(label, cmap)
  assert out.shape == (2, 2, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out[0, 0], cmap[0])
  np.testing.assert_array_equal(out[0, 1], cmap[18])
  np.testing.assert_array_equal(out[1, 0], colormaps.VOID_COLOR)
  np.testing.assert_array_equal(out[1, 1], colormaps.VOID_COLOR)


def test_colorize_label_rejects_bad_shape():
  with pytest.raises(ValueError, match="label"):
    colormaps.colorize_label(np.zeros((2, 2, 2), int),
                             colormaps.create_pascal_label_colormap())


def test_palette_png_keeps_class_ids(tmp_path):
  labels = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)
  colormap = colormaps.create_pascal_label_colormap()
  path = tmp_path / "labels.png"
  colormaps.palette_png(labels, colormap).save(path)
  reread = Image.open(path)
  assert reread.mode == "P"
  np.testing.assert_array_equal(np.array(reread), labels)
  image = np.full((2, 3, 3), 100, np.uint8)
  blended = colormaps.overlay(image, labels, colormap, alpha=1.0)
  np.testing.assert_array_equal(blended[labels > 0],
                                colormap[labels[labels > 0]])
  # Background (black in the VOC palette) leaves the image untouched.
  np.testing.assert_array_equal(blended[labels == 0], image[labels == 0])
