"""Label colormaps: class id -> RGB colour, for label PNGs and visualisation.

The PASCAL VOC palette is the one VOC's palette ("P" mode) label PNGs carry,
so it is also what maps RGB-mode VOC labels back to class ids
(`deeplab.datasets.label_io`). Every colormap here has 256 entries, so any
uint8 label (including the ignore label 255) has a colour.
"""

import functools

import numpy as np

# Cityscapes trainId colours, in trainId order (road ... bicycle), as defined
# by cityscapesscripts' `helpers/labels.py`.
_CITYSCAPES_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
    (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100),
    (0, 0, 230), (119, 11, 32),
)

# Colour of ids that a colormap does not cover (negative or >= its length).
# It is VOC's void colour, the colour of index 255 in the PASCAL palette.
VOID_COLOR = (224, 224, 192)

COLORMAP_NAMES = ("pascal", "cityscapes", "ade20k")


def _bit_interleaved_palette(size: int = 256) -> np.ndarray:
  """The PASCAL VOC palette: the bits of the id, spread over R, G and B.

  Bit 3k of the id goes to red, 3k+1 to green and 3k+2 to blue, each filling
  its channel from the most significant bit down. All 256 colours differ.
  """
  colormap = np.zeros((size, 3), dtype=np.int64)
  ind = np.arange(size, dtype=np.int64)
  for shift in reversed(range(8)):
    for channel in range(3):
      colormap[:, channel] |= ((ind >> channel) & 1) << shift
    ind >>= 3
  return colormap.astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _cached(name: str) -> np.ndarray:
  """Builds a colormap once; the cached array is read-only."""
  if name == "pascal":
    colormap = _bit_interleaved_palette()
  elif name == "cityscapes":
    colormap = np.zeros((256, 3), dtype=np.uint8)
    colormap[:len(_CITYSCAPES_COLORS)] = _CITYSCAPES_COLORS
  elif name == "ade20k":
    # Any deterministic palette with 151+ distinct colours serves; the
    # bit-interleaved one keeps neighbouring ids far apart in colour.
    colormap = _bit_interleaved_palette()
  else:
    raise ValueError(
        f"Unknown colormap {name!r}; known: {sorted(COLORMAP_NAMES)}.")
  colormap.setflags(write=False)
  return colormap



def get_colormap(name: str) -> np.ndarray:
  """Returns the named colormap (`pascal`, `cityscapes` or `ade20k`).

  Args:
    name: One of `COLORMAP_NAMES`.

  Returns:
    A new, writable uint8 array [256, 3].

  Raises:
    ValueError: naming the unknown colormap and the known ones.
  """
  return _cached(name).copy()


def create_pascal_label_colormap() -> np.ndarray:
  """The PASCAL VOC palette, uint8 [256, 3] (index 255 is the void colour)."""
  return get_colormap("pascal")


def create_cityscapes_label_colormap() -> np.ndarray:
  """Cityscapes trainId colours, uint8 [256, 3]; ids 19..255 are black."""
  return get_colormap("cityscapes")


def create_ade20k_label_colormap() -> np.ndarray:
  """A deterministic palette for ADE20K's 151 ids, uint8 [256, 3]."""
  return get_colormap("ade20k")


def colorize_label(label: np.ndarray, colormap: np.ndarray,
                   void_color=VOID_COLOR) -> np.ndarray:
  """Paints a label map with a colormap.

  Args:
    label: Integer class ids [H, W] (a trailing channel of 1 is accepted).
    colormap: uint8 [N, 3] colours, indexed by class id.
    void_color: RGB colour of ids outside [0, N).

  Returns:
    uint8 [H, W, 3].

  Raises:
    ValueError: if `label` is not 2-D or not integer, or `colormap` is not
      [N, 3].
  """
  label = np.asarray(label)
  if label.ndim == 3 and label.shape[-1] == 1:
    label = label[..., 0]
  if label.ndim != 2:
    raise ValueError(f"colorize_label expects a [H, W] label, got shape "
                     f"{label.shape}.")
  if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
    raise ValueError(f"colorize_label expects integer class ids, got dtype "
                     f"{label.dtype}.")
  colormap = np.asarray(colormap, dtype=np.uint8)
  if colormap.ndim != 2 or colormap.shape[1] != 3:
    raise ValueError(f"colormap must be [N, 3], got shape {colormap.shape}.")
  ids = label.astype(np.int64)
  valid = (ids >= 0) & (ids < len(colormap))
  out = np.empty(label.shape + (3,), dtype=np.uint8)
  out[...] = np.asarray(void_color, dtype=np.uint8)
  out[valid] = colormap[ids[valid]]
  return out


def palette(colormap: np.ndarray) -> np.ndarray:
  """`colormap` padded (or cut) to the 256 entries a uint8 label needs."""
  colors = np.zeros((256, 3), np.uint8)
  colormap = np.asarray(colormap, dtype=np.uint8)[:256]
  colors[:len(colormap)] = colormap
  return colors


def palette_png(labels: np.ndarray, colormap: np.ndarray):
  """A palette ("P" mode) PIL image of uint8 class ids, as VOC ships its
  labels: the pixel values are the ids, the palette only colours them."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = Image.fromarray(np.asarray(labels).astype(np.uint8), mode="P")
  image.putpalette(palette(colormap).ravel().tolist())
  return image


def colorize_labels(labels: np.ndarray, colormap: np.ndarray) -> np.ndarray:
  """`colorize_label` of a batch [B, H, W] -> uint8 [B, H, W, 3]."""
  labels = np.asarray(labels)
  return np.stack([colorize_label(label, colormap) for label in labels]
                  ) if len(labels) else np.zeros(labels.shape + (3,), np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, colormap: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
  """Blends the coloured label map over the image (uint8 [H, W, 3]).

  Pixels whose class colour is black (VOC's background) keep the image as it
  is, so the overlay does not darken the whole picture.
  """
  colored = colorize_label(labels, colormap).astype(np.float32)
  weight = np.where(colored.any(axis=-1, keepdims=True), alpha, 0.0)
  blended = (1 - weight) * np.asarray(image, np.float32) + weight * colored
  return np.clip(blended, 0, 255).astype(np.uint8)
