"""Segments images, videos or a webcam with an exported DeepLab model.

--model_path takes any export: a SavedModel (version or base folder), a
frozen graph `.pb`, a `.tflite`, an `.onnx` or an `.mnn` file. It predicts
as it was exported: export_model.py bakes the official
--prediction_with_upsampled_logits, --image_pyramid and --merge_method
into every format.

Images (files, folders, globs; --input is repeatable): for each image it
writes `<name>.png`, a palette PNG of the class ids (the VOC label format,
at the image's full size), `<name>_overlay.png`, the coloured prediction
blended over the image, and with --save_probabilities `<name>.npy`, the
float16 class probabilities [H, W, C]. Images of one size are run in
batches of --batch_size. Images whose long side exceeds --max_image_size
are segmented downscaled (JPEGs are even decoded downscaled, so memory
stays bounded); their label PNG is upsampled back to the full size, while
the overlay and probabilities keep the processed size. Peak memory is set
by the processed size (the model's activations), not the file's: a
10000x10000 JPEG at the default 2048 peaked at 1.7 GB with the small test
model, against 3.8 GB at 4096.

A file that cannot be read or written is reported and skipped; the run
ends with a summary (written, failed, with names) and exits non-zero when
anything failed. --fail_fast stops at the first failure instead.

Videos (`.mp4`, `.avi`, `.mov`, `.mkv`, `.webm`) and --webcam=<index> are
read with OpenCV; the overlay of every frame goes to
`<name>_overlay.mp4` (`webcam_overlay.mp4`).

--crf refines the probabilities with a dense CRF (pydensecrf2 when the
`crf` extra is installed, a NumPy mean field otherwise).

Example:

  python -m deeplab.inference --model_path=/models/deeplab \\
    --input=photos/ --input='extra/*.jpg' --input=clip.mp4 \\
    --output_dir=/tmp/vis --save_probabilities
"""

import contextlib
import glob
import io
import os
import time
from typing import Optional
import warnings

from absl import flags
from absl import logging
import numpy as np
from PIL import Image
import tqdm

from deeplab import common_flags
from deeplab.core import io_utils
from deeplab.core.evaluation import crf as crf_lib
from deeplab.core.export import predictors
from deeplab.datasets import colormaps

FLAGS = flags.FLAGS

flags.DEFINE_string("model_path", None,
                    "Exported model: SavedModel folder (a version, or its "
                    "base folder for the newest), frozen graph .pb, .tflite "
                    "or .onnx.")
flags.DEFINE_multi_string("input", None,
                          "Image or video files, folders or glob patterns; "
                          "repeatable.")
flags.DEFINE_integer("webcam", None,
                     "Also segment this OpenCV camera index (e.g. 0).")
flags.DEFINE_integer("max_frames", 0,
                     "Stop each video or the webcam after this many frames "
                     "(0: until the stream ends).")
flags.DEFINE_string("output_dir", None, "Where predictions are written.")
flags.DEFINE_float("overlay_alpha", 0.5,
                   "Opacity of the coloured prediction in the overlay.")
flags.DEFINE_integer("batch_size", 4, "Images segmented per model call.",
                     lower_bound=1)
flags.DEFINE_boolean("save_probabilities", False,
                     "Also write <name>.npy: float16 probabilities [H, W, C].")
flags.DEFINE_integer("max_image_size", 2048,
                     "Images with a longer side are segmented downscaled to "
                     "it: memory follows this size, not the file's.",
                     lower_bound=32)
flags.DEFINE_boolean("fail_fast", False,
                     "Stop at the first image that cannot be read or "
                     "written (default: report it, go on, and exit "
                     "non-zero at the end).")
flags.DEFINE_boolean("crf", False,
                     "Refine predictions with a dense CRF (slow).")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp",
                    ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# Beyond this many pixels an image is rejected outright (PIL's bomb guard
# would stop it anyway); below, large images are decoded downscaled.
MAX_PIXELS = 30000 * 30000


def is_video(path: str) -> bool:
  return path.lower().endswith(VIDEO_EXTENSIONS)


def list_images(patterns) -> list:
  """Expands files, folders and globs into a sorted list of image/video files.

  Raises:
    FileNotFoundError: naming the input that matched no file.
  """
  files = []
  extensions = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
  for pattern in patterns:
    if os.path.isdir(pattern):
      matches = [os.path.join(pattern, n) for n in sorted(os.listdir(pattern))
                 if n.lower().endswith(extensions)]
    elif os.path.isfile(pattern):
      matches = [pattern]
    else:
      matches = sorted(glob.glob(pattern))
    if not matches:
      raise FileNotFoundError(f"--input {pattern!r} matched no image file.")
    files.extend(matches)
  return files


def load_rgb(path: str, max_size: int = 0) -> np.ndarray:
  """Reads an image as uint8 RGB (grayscale, palette and RGBA converted).

  Args:
    path: Image file.
    max_size: If positive, images whose long side is larger are shrunk to
      it; JPEGs are decoded at a reduced scale first (bounded memory).

  Raises:
    ValueError: naming the file, when it is not a readable image (not an
      image, truncated, or too large).
  """
  try:
    with _pixel_limit(), Image.open(path) as image:
      if max_size and max(image.size) > max_size:
        scale = max_size / max(image.size)
        target = (max(1, round(image.width * scale)),
                  max(1, round(image.height * scale)))
        image.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8.
        image = image.convert("RGB")
        if max(image.size) > max_size:
          image = image.resize(target, Image.BILINEAR)
        return np.array(image)
      return np.array(image.convert("RGB"))
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
    raise ValueError(f"Cannot read image {path!r}: {error}") from None


@contextlib.contextmanager
def _pixel_limit():
  """Raises PIL's decompression-bomb limit to MAX_PIXELS, temporarily."""
  previous = Image.MAX_IMAGE_PIXELS
  Image.MAX_IMAGE_PIXELS = MAX_PIXELS
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      yield
  finally:
    Image.MAX_IMAGE_PIXELS = previous


def _image_size(path: str):
  try:
    with _pixel_limit(), Image.open(path) as image:
      return image.size
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
    raise ValueError(f"Cannot read image {path!r}: {error}") from None


def _encode_png(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()


def _refine(image, labels, probabilities, use_crf):
  if not use_crf:
    return labels, probabilities
  probabilities = crf_lib.dense_crf(image, probabilities)
  return np.argmax(probabilities, -1).astype(np.int32), probabilities


def _write_outputs(path, image, labels, probabilities, output_dir, colormap,
                   overlay_alpha, save_probabilities, full_size):
  stem = os.path.splitext(os.path.basename(path))[0]
  label_image = colormaps.palette_png(labels, colormap)
  if full_size != label_image.size:
    label_image = label_image.resize(full_size, Image.NEAREST)
  label_path = os.path.join(output_dir, stem + ".png")
  io_utils.atomic_write_bytes(label_path, _encode_png(label_image))
  io_utils.atomic_write_bytes(
      os.path.join(output_dir, stem + "_overlay.png"),
      _encode_png(Image.fromarray(colormaps.overlay(image, labels, colormap,
                                          overlay_alpha))))
  if save_probabilities:
    buffer = io.BytesIO()
    np.save(buffer, probabilities.astype(np.float16))
    io_utils.atomic_write_bytes(os.path.join(output_dir, stem + ".npy"),
                                buffer.getvalue())
  return label_path


def segment_files(predictor, files, output_dir: str, colormap: np.ndarray,
                  overlay_alpha: float = 0.5, batch_size: int = 4,
                  save_probabilities: bool = False,
                  max_image_size: int = 2048, use_crf: bool = False,
                  failures: Optional[list] = None) -> list:
  """Segments image files, in batches, and writes their outputs.

  Args:
    predictor: A `predictors.Predictor`, or a model path.
    files: Image paths.
    output_dir: Output folder.
    colormap: Class colours.
    overlay_alpha: Opacity of the prediction in the overlay.
    batch_size: Images of one size segmented per model call.
    save_probabilities: Also write `<name>.npy`.
    max_image_size: Longer images are segmented downscaled to this.
    use_crf: Refine with a dense CRF.
    failures: When a list, an image that cannot be read or written is
      appended to it as (path, reason) and skipped; when None, the first
      one raises.

  Returns:
    The written label PNG paths.

  Raises:
    ValueError: naming the file, for an unreadable image (failures=None).
    OSError: naming the path, when an output cannot be written
      (failures=None).
  """
  if isinstance(predictor, str):
    predictor = predictors.load_predictor(predictor)
  os.makedirs(output_dir, exist_ok=True)
  written = []
  start = time.time()
  progress = tqdm.tqdm(total=len(files), unit="image", desc="segmenting")

  def attempt(path, fn, *args):
    try:
      return fn(*args)
    except (ValueError, OSError) as error:
      if failures is None:
        raise
      logging.error("Skipping %s: %s", path, error)
      failures.append((path, str(error)))
      return None

  try:
    for begin in range(0, len(files), max(1, batch_size)):
      batch = []
      for path in files[begin:begin + max(1, batch_size)]:
        loaded = attempt(path, lambda p: (load_rgb(p, max_image_size),
                                          _image_size(p)), path)
        if loaded is not None:
          batch.append((path, *loaded))
      outputs = predictor.predict_batch([b[1] for b in batch]) if batch else []
      for (path, image, size), (labels, probabilities) in zip(batch, outputs):
        labels, probabilities = _refine(image, labels, probabilities, use_crf)
        label_path = attempt(path, _write_outputs, path, image, labels,
                             probabilities, output_dir, colormap,
                             overlay_alpha, save_probabilities, size)
        if label_path:
          written.append(label_path)
      progress.update(min(batch_size, len(files) - begin))
  finally:
    progress.close()
  logging.info("Segmented %d images in %.1fs (%.2f images/s).", len(written),
               time.time() - start,
               len(written) / max(time.time() - start, 1e-9))
  return written


def failure_summary(written: int, failures) -> str:
  """One line: N written, M failed, with the names of the failed files."""
  names = ", ".join(f"{os.path.basename(p)} ({reason})"
                    for p, reason in failures)
  return f"{written} image(s) written, {len(failures)} failed: {names}"


def segment_video(predictor, source, output_path: str, colormap: np.ndarray,
                  overlay_alpha: float = 0.5, max_frames: int = 0,
                  use_crf: bool = False) -> int:
  """Segments a video file or camera (index) and writes the overlay video.

  Returns:
    The number of frames written.

  Raises:
    ValueError: naming the source, when OpenCV cannot open it or it has no
      frames.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  capture = cv2.VideoCapture(source)
  if not capture.isOpened():
    raise ValueError(f"OpenCV cannot open video source {source!r}.")
  fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
  total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
  if max_frames:
    total = min(total or max_frames, max_frames)
  folder = os.path.dirname(os.path.abspath(output_path))
  os.makedirs(folder, exist_ok=True)
  io_utils.remove_stale_temporaries(folder)
  temporary = os.path.join(
      folder, f".tmp-{os.getpid()}-{os.path.basename(output_path)}")
  writer = None
  count = 0
  progress = tqdm.tqdm(total=total, unit="frame", desc=str(source))
  try:
    while not max_frames or count < max_frames:
      ok, frame = capture.read()
      if not ok:
        break
      rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
      labels, probabilities = predictor(rgb)
      labels, _ = _refine(rgb, labels, probabilities, use_crf)
      blended = colormaps.overlay(rgb, labels, colormap, overlay_alpha)
      if writer is None:
        writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"mp4v"),
                                 fps, (rgb.shape[1], rgb.shape[0]))
      writer.write(cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
      count += 1
      progress.update(1)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise
  finally:
    progress.close()
    capture.release()
    if writer is not None:
      writer.release()
  if count == 0:
    raise ValueError(f"Video source {source!r} gave no frames.")
  os.replace(temporary, output_path)
  return count


def main(argv):
  del argv
  common_flags.require_flag("model_path")
  common_flags.require_flag("output_dir")
  if not FLAGS.input and FLAGS.webcam is None:
    raise flags.ValidationError("Pass --input (files, folders, globs) "
                                "and/or --webcam=<camera index>.")
  files = list_images(FLAGS.input or [])
  descriptor = common_flags.dataset_descriptor_from_flags()
  predictor = predictors.load_predictor(FLAGS.model_path)
  common_flags.warn_prediction_flags_for_exports()
  if (FLAGS.save_probabilities or FLAGS.crf) and not predictor.has_probabilities:
    raise ValueError(
        f"--save_probabilities and --crf need probabilities, which "
        f"--model_path {FLAGS.model_path!r} does not output (a lean export): "
        "re-export it with export_model.py --export_probabilities.")
  images = [f for f in files if not is_video(f)]
  failures = None if FLAGS.fail_fast else []
  written = segment_files(
      predictor, images, FLAGS.output_dir, descriptor.colormap,
      FLAGS.overlay_alpha, FLAGS.batch_size, FLAGS.save_probabilities,
      FLAGS.max_image_size, FLAGS.crf, failures) if images else []
  sources = [(f, os.path.splitext(os.path.basename(f))[0])
             for f in files if is_video(f)]
  if FLAGS.webcam is not None:
    sources.append((FLAGS.webcam, "webcam"))
  for source, stem in sources:
    path = os.path.join(FLAGS.output_dir, stem + "_overlay.mp4")
    try:
      frames = segment_video(predictor, source, path, descriptor.colormap,
                             FLAGS.overlay_alpha, FLAGS.max_frames, FLAGS.crf)
    except (ValueError, OSError) as error:
      if failures is None:
        raise
      logging.error("Skipping %s: %s", source, error)
      failures.append((str(source), str(error)))
      continue
    print(f"Segmented {frames} frame(s) of {source} into {path}")
  print(f"Segmented {len(written)} image(s) into {FLAGS.output_dir}")
  if failures:
    raise ValueError(failure_summary(len(written), failures))


def run():
  """Console-script entry point (`deeplab-infer`)."""
  common_flags.run_app(main, "Inference", [
      ("Data", ["dataset", "num_classes"])])


if __name__ == "__main__":
  run()
