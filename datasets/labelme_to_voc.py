"""Converts labelme JSON annotations into a VOC-layout dataset.

Input: a folder of labelme JSON files (each with its image next to it, at
`imagePath`, or embedded as `imageData`) and a labels file in labelme's
format, one class per line:

  __ignore__     optional; its shapes become the ignore label 255
  _background_   class 0
  person         class 1, ...

Output (what `build_custom_data.py` reads):

  {output_dir}/JPEGImages/{stem}.jpg|.png       the image, byte for byte
  {output_dir}/SegmentationClass/{stem}.png     VOC palette PNG of class ids
  {output_dir}/ImageSets/Segmentation/trainval.txt
  {output_dir}/class_names.txt                  `_background_`, classes...

Shapes are drawn in file order, so later shapes win where they overlap, the
way labelme's own `labelme2voc` draws them (polygon, rectangle, circle,
line, linestrip, point), and its PNGs are reproduced pixel for pixel. File
names come from the JSON file's name, never from `imagePath`, so nothing is
written outside `--output_dir`.

Usage:
  python -m deeplab.datasets.labelme_to_voc --json_dir=annotated \\
    --labels_file=labels.txt --output_dir=my_voc
"""

import base64
import io
import json
import math
import os
from typing import Dict, List, Tuple

from absl import flags
from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw

from deeplab.core import io_utils
from deeplab.datasets import build_data
from deeplab.datasets import label_io

FLAGS = flags.FLAGS

IGNORE_NAME = "__ignore__"
BACKGROUND_NAME = "_background_"
IGNORE_LABEL = 255
# labelme's defaults for shapes without area.
_LINE_WIDTH = 10
_POINT_SIZE = 5


def define_flags() -> None:
  """Defines the converter's flags (only when run as a program)."""
  flags.DEFINE_string("json_dir", None, "Folder of labelme JSON files.")
  flags.DEFINE_string("labels_file", None,
                      "Class names, one per line: optional __ignore__, then "
                      "_background_, then the classes.")
  flags.DEFINE_string("output_dir", None, "Output VOC-layout folder.")


def read_labels_file(labels_file: str) -> Dict[str, int]:
  """Maps class name -> id (`__ignore__` -> 255, `_background_` -> 0).

  Raises:
    FileNotFoundError: naming the file.
    ValueError: if `_background_` is not the first class or a name repeats.
  """
  build_data.require_file(labels_file, "labels_file")
  with open(labels_file) as f:
    names = [line.strip() for line in f if line.strip()]
  mapping = {}
  if names and names[0] == IGNORE_NAME:
    mapping[IGNORE_NAME] = IGNORE_LABEL
    names = names[1:]
  if not names or names[0] != BACKGROUND_NAME:
    raise ValueError(
        f"--labels_file {labels_file}: the first class (after an optional "
        f"{IGNORE_NAME}) must be {BACKGROUND_NAME}.")
  if len(names) > IGNORE_LABEL:
    raise ValueError(f"--labels_file {labels_file} has {len(names)} classes; "
                     f"at most {IGNORE_LABEL} fit below the ignore label.")
  for class_id, name in enumerate(names):
    if name in mapping:
      raise ValueError(f"--labels_file {labels_file} repeats {name!r}.")
    mapping[name] = class_id
  return mapping


def shape_mask(size: Tuple[int, int], points: List[List[float]],
               shape_type: str, name: str) -> np.ndarray:
  """bool [H, W] mask of one labelme shape, drawn as labelme draws it.

  Args:
    size: (height, width).
    points: The shape's [x, y] points.
    shape_type: polygon (default), rectangle, circle, line, linestrip or
      point.
    name: Names the shape in errors.
  """
  mask = Image.fromarray(np.zeros(size, dtype=np.uint8))
  draw = ImageDraw.Draw(mask)
  xy = [tuple(point) for point in points]
  if shape_type == "circle":
    if len(xy) != 2:
      raise ValueError(f"{name}: a circle needs 2 points, got {len(xy)}.")
    (cx, cy), (px, py) = xy
    d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
    draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
  elif shape_type == "rectangle":
    if len(xy) != 2:
      raise ValueError(f"{name}: a rectangle needs 2 points, got {len(xy)}.")
    (x0, y0), (x1, y1) = xy
    draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)],
                   outline=1, fill=1)
  elif shape_type in ("line", "linestrip"):
    draw.line(xy=xy, fill=1, width=_LINE_WIDTH)
  elif shape_type == "point":
    x, y = xy[0]
    r = _POINT_SIZE
    draw.ellipse([x - r, y - r, x + r, y + r], outline=1, fill=1)
  elif shape_type in (None, "polygon"):
    if len(xy) < 3:
      raise ValueError(f"{name}: a polygon needs 3 or more points, got "
                       f"{len(xy)}.")
    draw.polygon(xy=xy, outline=1, fill=1)
  else:
    raise ValueError(f"{name}: unsupported shape_type {shape_type!r}.")
  return np.array(mask, dtype=bool)


def _read_image(annotation: dict, json_path: str) -> Tuple[bytes, str]:
  """The image bytes (embedded or at `imagePath`) and their extension."""
  if annotation.get("imageData"):
    data = base64.b64decode(annotation["imageData"])
  else:
    image_path = annotation.get("imagePath")
    if not image_path:
      raise ValueError(f"{json_path} has neither imageData nor imagePath.")
    path = os.path.join(os.path.dirname(json_path), image_path)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{json_path}: image {image_path!r} not found (looked at {path}).")
    with open(path, "rb") as f:
      data = f.read()
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      image_format = image.format
  except (OSError, SyntaxError) as e:
    raise ValueError(f"{json_path}: its image is unreadable: {e}") from e
  if image_format == "JPEG":
    return data, ".jpg"
  if image_format != "PNG":
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
  return data, ".png"


def convert_annotation(json_path: str,
                       class_ids: Dict[str, int]) -> Tuple[bytes, str,
                                                           np.ndarray]:
  """Converts one labelme JSON.

  Returns:
    (image bytes, image extension, uint8 [H, W] class ids).

  Raises:
    ValueError: naming the JSON file, for an unknown label, a bad shape, a
      size that differs from the image's, or an unreadable file.
  """
  try:
    with open(json_path) as f:
      annotation = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"Cannot read labelme JSON {json_path}: {e}") from e
  image_bytes, extension = _read_image(annotation, json_path)
  width, height = Image.open(io.BytesIO(image_bytes)).size
  stated = (annotation.get("imageHeight"), annotation.get("imageWidth"))
  if None not in stated and tuple(stated) != (height, width):
    raise ValueError(
        f"{json_path}: imageHeight x imageWidth {stated[0]}x{stated[1]} "
        f"differs from its image's {height}x{width}.")
  label = np.zeros((height, width), dtype=np.uint8)
  for index, shape in enumerate(annotation.get("shapes", [])):
    name = shape.get("label")
    if name not in class_ids:
      raise ValueError(
          f"{json_path}: shape {index} has label {name!r}, which is not in "
          f"the labels file (known: {sorted(class_ids)}).")
    mask = shape_mask((height, width), shape.get("points", []),
                      shape.get("shape_type"), f"{json_path} shape {index}")
    label[mask] = class_ids[name]
  return image_bytes, extension, label


def convert_labelme_dir(json_dir: str, labels_file: str,
                        output_dir: str) -> List[str]:
  """Converts every `*.json` in `json_dir` (sorted) into `output_dir`.

  Every file is checked before anything is written; files are written under
  temporary names and renamed.

  Returns:
    The names (JSON stems) written, in order.

  Raises:
    FileNotFoundError / ValueError: naming the flag or the bad JSON file.
  """
  build_data.require_dir(json_dir, "json_dir")
  if not output_dir:
    raise ValueError("--output_dir is required.")
  class_ids = read_labels_file(labels_file)
  json_names = sorted(n for n in os.listdir(json_dir) if n.endswith(".json"))
  if not json_names:
    raise ValueError(f"--json_dir {json_dir} holds no .json files.")
  converted = []
  for json_name in json_names:
    stem = os.path.splitext(json_name)[0]
    converted.append((stem, convert_annotation(
        os.path.join(json_dir, json_name), class_ids)))
  image_dir = os.path.join(output_dir, "JPEGImages")
  label_dir = os.path.join(output_dir, "SegmentationClass")
  list_dir = os.path.join(output_dir, "ImageSets", "Segmentation")
  for folder in (image_dir, label_dir, list_dir):
    os.makedirs(folder, exist_ok=True)
  for stem, (image_bytes, extension, label) in converted:
    # `stem` comes from a file name listed in json_dir: no separators.
    io_utils.atomic_write_bytes(os.path.join(image_dir, stem + extension),
                                image_bytes)
    buffer = io.BytesIO()
    label_io.write_palette_png(label, buffer)
    io_utils.atomic_write_bytes(os.path.join(label_dir, f"{stem}.png"),
                                buffer.getvalue())
  names = [stem for stem, _ in converted]
  io_utils.atomic_write_bytes(
      os.path.join(list_dir, "trainval.txt"),
      "".join(f"{n}\n" for n in names).encode())
  classes = sorted((i, n) for n, i in class_ids.items() if i != IGNORE_LABEL)
  io_utils.atomic_write_bytes(
      os.path.join(output_dir, "class_names.txt"),
      "".join(f"{n}\n" for _, n in classes).encode())
  logging.info("Converted %d labelme files into %s.", len(names), output_dir)
  return names


def main(argv):
  del argv  # Unused.
  names = convert_labelme_dir(FLAGS.json_dir, FLAGS.labels_file,
                              FLAGS.output_dir)
  print(f"Wrote {len(names)} images and labels to {FLAGS.output_dir}.")


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
