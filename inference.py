"""Segments image files with an exported DeepLab SavedModel.

For each input image it writes `<name>.png`, a palette PNG of the predicted
class ids (the VOC label format), and `<name>_overlay.png`, the image with
the coloured prediction blended over it.

Example:

  python -m deeplab.inference --model_path=/models/deeplab \
    --input=photos/ --input=extra.jpg --output_dir=/tmp/vis
"""

import glob
import os
import time

from absl import flags
from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab import common_flags
from deeplab.core import exporter
from deeplab.core import io_utils
from deeplab.datasets import colormaps

FLAGS = flags.FLAGS

flags.DEFINE_string("model_path", None,
                    "SavedModel version folder, or its base folder (the "
                    "newest version is used).")
flags.DEFINE_multi_string("input", None,
                          "Image files, folders or glob patterns; repeatable.")
flags.DEFINE_string("output_dir", None, "Where predictions are written.")
flags.DEFINE_float("overlay_alpha", 0.5,
                   "Opacity of the coloured prediction in the overlay.")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def list_images(patterns) -> list:
  """Expands files, folders and globs into a sorted list of image files.

  Raises:
    FileNotFoundError: naming the input that matched no image.
  """
  files = []
  for pattern in patterns:
    if os.path.isdir(pattern):
      matches = [os.path.join(pattern, n) for n in sorted(os.listdir(pattern))
                 if n.lower().endswith(IMAGE_EXTENSIONS)]
    elif os.path.isfile(pattern):
      matches = [pattern]
    else:
      matches = sorted(glob.glob(pattern))
    if not matches:
      raise FileNotFoundError(f"--input {pattern!r} matched no image file.")
    files.extend(matches)
  return files


def load_rgb(path: str) -> np.ndarray:
  """Reads an image as uint8 RGB (grayscale and RGBA are converted).

  Raises:
    ValueError: naming the file, when it is not a readable image.
  """
  try:
    with Image.open(path) as image:
      return np.array(image.convert("RGB"))
  except (OSError, SyntaxError) as error:
    raise ValueError(f"Cannot read image {path!r}: {error}") from None


def overlay(image: np.ndarray, labels: np.ndarray, colormap: np.ndarray,
            alpha: float) -> np.ndarray:
  """Blends the coloured label map over the image.

  Pixels whose class colour is black (VOC's background) keep the image as it
  is, so the overlay does not darken the whole picture.
  """
  colored = colormaps.colorize_label(labels, colormap).astype(np.float32)
  weight = np.where(colored.any(axis=-1, keepdims=True), alpha, 0.0)
  blended = (1 - weight) * image.astype(np.float32) + weight * colored
  return np.clip(blended, 0, 255).astype(np.uint8)


def palette_png(labels: np.ndarray, colormap: np.ndarray) -> Image.Image:
  """A palette ("P" mode) PNG of class ids, as VOC ships its labels."""
  image = Image.fromarray(labels.astype(np.uint8), mode="P")
  palette = np.zeros((256, 3), np.uint8)
  palette[:len(colormap)] = np.asarray(colormap)[:256]
  image.putpalette(palette.flatten().tolist())
  return image


def _encode_png(image: Image.Image) -> bytes:
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()


def segment_files(model_path: str, files, output_dir: str,
                  colormap: np.ndarray, overlay_alpha: float = 0.5) -> list:
  """Segments each file and writes its label PNG and overlay.

  Returns:
    The list of written label PNG paths.
  """
  serving = tf.saved_model.load(exporter.resolve_saved_model_dir(model_path))
  signature = serving.signatures[exporter.SERVING_SIGNATURE]
  os.makedirs(output_dir, exist_ok=True)
  written = []
  start = time.time()
  for index, path in enumerate(files, 1):
    image = load_rgb(path)
    outputs = signature(ImageTensor=tf.constant(image[None]))
    labels = outputs["semantic_predictions"][0].numpy()
    stem = os.path.splitext(os.path.basename(path))[0]
    label_path = os.path.join(output_dir, stem + ".png")
    io_utils.atomic_write_bytes(label_path,
                                _encode_png(palette_png(labels, colormap)))
    io_utils.atomic_write_bytes(
        os.path.join(output_dir, stem + "_overlay.png"),
        _encode_png(Image.fromarray(
            overlay(image, labels, colormap, overlay_alpha))))
    written.append(label_path)
    rate = index / max(time.time() - start, 1e-9)
    logging.info("[%d/%d] %s -> %s  (%.2f images/s, ETA %.0fs)", index,
                 len(files), path, label_path, rate,
                 (len(files) - index) / rate)
  return written


def main(argv):
  del argv
  common_flags.require_flag("model_path")
  common_flags.require_flag("input")
  common_flags.require_flag("output_dir")
  files = list_images(FLAGS.input)
  descriptor = common_flags.dataset_descriptor_from_flags()
  written = segment_files(FLAGS.model_path, files, FLAGS.output_dir,
                          descriptor.colormap, FLAGS.overlay_alpha)
  print(f"Segmented {len(written)} image(s) into {FLAGS.output_dir}")


def run():
  """Console-script entry point (`deeplab-infer`)."""
  common_flags.run_app(main)


if __name__ == "__main__":
  run()
