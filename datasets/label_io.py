"""Reading and writing label images as class-index arrays (no TensorFlow).

VOC-style datasets store labels as palette ("P" mode) PNGs whose pixel values
are class ids; the palette only colours them. `tf.io.decode_png` returns the
palette colours (or, with `channels=1`, their luminance), not the ids, so
labels are read here with PIL and stored in TFRecords as single-channel
8-bit index PNGs, which `decode_png(channels=1)` reads back exactly.

Some tools write VOC labels as RGB images of the palette colours; those are
mapped back to ids through the colormap, exact colours only.

This module imports no TensorFlow so that builder worker processes start
fast.
"""

import io
import os
from typing import Optional

import numpy as np
from PIL import Image

from deeplab.datasets import colormaps

# Modes whose pixel values are the class ids.
_INDEX_MODES = ("P", "L", "1")
# Modes whose pixel values are colours, mapped through a colormap.
_COLOR_MODES = ("RGB", "RGBA")


def read_label_png(path: str,
                   colormap: Optional[np.ndarray] = None) -> np.ndarray:
  """Reads a label image as class indices.

  Args:
    path: Label file: an 8-bit palette ("P"), greyscale ("L") or 1-bit PNG
      whose values are class ids, or an RGB(A) PNG of colormap colours.
    colormap: uint8 [N, 3] used to map RGB labels to ids; defaults to the
      PASCAL VOC palette. Ignored for index modes.

  Returns:
    uint8 [H, W] class ids (255 stays 255).

  Raises:
    FileNotFoundError: naming the path, if it does not exist.
    ValueError: naming the path, if the file is unreadable, lossy (JPEG),
      16-bit or of another unsupported mode, or (RGB) holds a colour that is
      not in the colormap.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Label file not found: {path}")
  try:
    with Image.open(path) as image:
      image.load()
      if image.format == "JPEG":
        raise ValueError(
            f"Label {path} is a JPEG; lossy compression corrupts class ids. "
            "Store labels as PNG.")
      if image.mode in _INDEX_MODES:
        return np.array(image).astype(np.uint8)
      if image.mode in _COLOR_MODES:
        rgba = np.array(image.convert("RGBA"))
        if (rgba[..., 3] != 255).any():
          raise ValueError(
              f"Label {path} is RGBA with transparent pixels; expected an "
              "opaque colour label or an index PNG.")
        return rgb_to_index(rgba[..., :3], colormap, name=path)
      raise ValueError(
          f"Label {path} has PIL mode {image.mode!r} (e.g. 16-bit or float); "
          "expected an 8-bit index PNG (mode P or L) or an RGB colour label.")
  except (OSError, SyntaxError) as e:  # PIL's errors for unreadable files.
    raise ValueError(f"Cannot read label {path}: {e}") from e


def read_sbd_mat(path: str) -> np.ndarray:
  """Reads the class segmentation of an SBD `cls/*.mat` file.

  SBD (Hariharan et al. 2011) stores `GTcls.Segmentation` as uint8 VOC class
  ids 0..20; it has no void (255) boundary band.

  Raises:
    FileNotFoundError: naming the path, if it does not exist.
    ValueError: naming the path, if it is not an SBD class .mat file.
  """
  import scipy.io  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise FileNotFoundError(f"SBD label file not found: {path}")
  try:
    mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    segmentation = mat["GTcls"].Segmentation
  except (KeyError, AttributeError, ValueError, TypeError, OSError) as e:
    raise ValueError(
        f"Cannot read SBD label {path}: expected a MATLAB file with "
        f"GTcls.Segmentation ({type(e).__name__}: {e}).") from e
  return np.asarray(segmentation)


def rgb_to_index(rgb: np.ndarray,
                 colormap: Optional[np.ndarray] = None,
                 name: str = "label") -> np.ndarray:
  """Maps an RGB colour label to class ids by exact colormap match.

  Args:
    rgb: uint8 [H, W, 3] colours.
    colormap: uint8 [N, 3]; defaults to the PASCAL VOC palette. When a colour
      repeats in it, the lowest id wins.
    name: Names the label (a file) in errors.

  Returns:
    uint8 [H, W] ids.

  Raises:
    ValueError: naming `name` and up to five unknown colours.
  """
  if colormap is None:
    colormap = colormaps.create_pascal_label_colormap()
  colormap = np.asarray(colormap, dtype=np.int64)
  if len(colormap) > 256:
    raise ValueError(f"colormap has {len(colormap)} entries; uint8 labels "
                     "hold at most 256 ids.")
  rgb = np.asarray(rgb, dtype=np.int64)
  codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
  palette_codes = ((colormap[:, 0] << 16) | (colormap[:, 1] << 8) |
                   colormap[:, 2])
  # np.unique's first occurrence gives the lowest id for repeated colours.
  known_codes, first_id = np.unique(palette_codes, return_index=True)
  colors, inverse = np.unique(codes, return_inverse=True)
  position = np.searchsorted(known_codes, colors)
  position = np.minimum(position, len(known_codes) - 1)
  found = known_codes[position] == colors
  if not found.all():
    unknown = colors[~found]
    shown = ", ".join(
        str((int(c) >> 16 & 255, int(c) >> 8 & 255, int(c) & 255))
        for c in unknown[:5])
    raise ValueError(
        f"Label {name} has {len(unknown)} colour(s) that are not in the "
        f"colormap, e.g. {shown}; expected exact colormap colours (or an "
        "index PNG).")
  ids = first_id[position].astype(np.uint8)
  return ids[inverse].reshape(codes.shape)


def encode_label_png(label: np.ndarray) -> bytes:
  """Encodes uint8 [H, W] class ids as a single-channel 8-bit PNG."""
  label = np.asarray(label)
  if label.dtype != np.uint8 or label.ndim != 2:
    raise ValueError(f"encode_label_png expects uint8 [H, W], got "
                     f"{label.dtype} {label.shape}.")
  buffer = io.BytesIO()
  Image.fromarray(label).save(buffer, format="PNG")
  return buffer.getvalue()


def write_palette_png(label: np.ndarray, path: str,
                      colormap: Optional[np.ndarray] = None) -> None:
  """Writes uint8 [H, W] ids as a VOC-style palette ("P") PNG.

  Args:
    label: uint8 [H, W] class ids.
    path: Output file.
    colormap: uint8 [256, 3] palette; defaults to the PASCAL VOC palette.
  """
  if colormap is None:
    colormap = colormaps.create_pascal_label_colormap()
  colormaps.palette_png(label, colormap).save(path, format="PNG")
