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

# The ADE20K scene-parsing benchmark's colours for ids 0 (other) to 150, as
# official `get_dataset_colormap.create_ade20k_label_colormap` lists them.
_ADE20K_COLORS = (
    (0, 0, 0), (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50),
    (4, 200, 3), (120, 120, 80), (140, 140, 140), (204, 5, 255), (230, 230, 230),
    (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70),
    (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7),
    (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92),
    (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71),
    (255, 41, 10), (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6),
    (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41), (255, 5, 153),
    (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140),
    (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255),
    (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255),
    (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0),
    (194, 255, 0), (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41),
    (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0),
    (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204),
    (0, 255, 194), (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255),
    (0, 194, 255), (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10),
    (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0),
    (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31),
    (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0),
    (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0),
    (255, 0, 235), (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212),
    (214, 255, 0), (0, 204, 255), (20, 0, 255), (255, 255, 0), (0, 153, 255),
    (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255),
    (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0),
    (92, 0, 255),
)

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
    colormap = np.zeros((256, 3), dtype=np.uint8)
    colormap[:len(_ADE20K_COLORS)] = _ADE20K_COLORS
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
  """The ADE20K benchmark palette (official), uint8 [256, 3]; ids 151..255
  are black."""
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
