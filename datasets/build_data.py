"""The one TFRecord writer that every dataset builder shares.

A builder (VOC, and later SBD, COCO, Cityscapes, ADE20K, a custom dataset)
supplies only what differs between datasets:

  * a list of `ExampleSpec`s: the example's key, its image file and a
    picklable label source (a PNG path, a .mat path, annotations, ...);
  * a top-level, picklable `read_label(spec) -> uint8 [H, W]` function.

`write_split` does the rest, the same way for all of them: it reads and
validates every image (decoding it fully), reads and validates its label
(same size; values in [0, num_classes) or the ignore label), encodes the
label as a single-channel index PNG, and writes the official Example format
into `num_shards` contiguous shards, in list order, so that reading the
shards in order gives the list order.

Shards are written under temporary names and renamed to their final names
only after the whole split succeeded, so a failed build leaves no new
final-named shard behind. Encoding can run in worker processes.

Example:
  specs = [ExampleSpec("a", "/d/a.jpg", "/d/a.png"), ...]
  summary = write_split(specs, read_png_label, "/out", "train",
                        num_shards=4, num_classes=21)
"""

import collections
import concurrent.futures
import dataclasses
import functools
import io
import itertools
import multiprocessing
import pickle
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional
from typing import Sequence, Tuple

from absl import logging
import numpy as np
from PIL import Image

from deeplab.datasets import label_io

# Re-exported: builders read index/palette/RGB label PNGs with it.
read_label_png = label_io.read_label_png

# Quality of JPEGs re-encoded from other formats (JPEG inputs are kept as-is).
_JPEG_QUALITY = 95
# Examples encoded per worker task; amortises inter-process overhead.
_CHUNK_SIZE = 8
# Tasks in flight per worker; bounds the memory held by finished results.
_TASKS_PER_WORKER = 4


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
  """One example to write: what a builder lists.

  Attributes:
    key: Stored as `image/filename`; by convention the list entry, e.g.
      `2007_000032`. Unique within a split.
    image_path: Image file (JPEG kept as-is; other formats re-encoded).
    label_source: Whatever the builder's `read_label` needs (a PNG path, a
      .mat path, a list of annotations, ...). Must be picklable. Its `str()`
      names the label in error messages.
  """

  key: str
  image_path: str
  label_source: Any


class InvalidExampleError(ValueError):
  """An example that cannot be written; the message names its files."""


def read_png_label(spec: ExampleSpec) -> np.ndarray:
  """`read_label` for specs whose `label_source` is a label image path."""
  return label_io.read_label_png(spec.label_source)


# === Encoding one example (runs in worker processes) ===


@dataclasses.dataclass(frozen=True)
class _Encoded:
  """A validated example, ready to be serialized."""
  index: int
  key: str
  image_bytes: bytes
  height: int
  width: int
  label_png: bytes
  label_histogram: np.ndarray  # int64 [256] pixel count per label value.
  image_format: str = "jpeg"


@dataclasses.dataclass(frozen=True)
class _Failed:
  """An example that failed validation, and why."""
  index: int
  key: str
  reason: str


def _load_image(path: str,
                keep_png: bool = False) -> Tuple[bytes, int, int, str]:
  """Reads an image, decodes it fully to validate it, returns its bytes.

  Args:
    path: Image file.
    keep_png: Keep RGB/greyscale 8-bit PNGs byte for byte (lossless, as the
      official Cityscapes builder does) instead of re-encoding them.

  Returns:
    (image_bytes, height, width, format). JPEG files (and PNGs with
    `keep_png`) are returned byte for byte; other formats (and CMYK JPEGs)
    are re-encoded as RGB JPEG.

  Raises:
    InvalidExampleError: naming the file, if it is missing or not a
      decodable image.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise InvalidExampleError(f"Cannot read image {path}: {e}") from e
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()  # Decodes every pixel: catches truncated/corrupt files.
      width, height = image.size
      if image.format == "JPEG" and image.mode in ("RGB", "L"):
        return data, height, width, "jpeg"
      if keep_png and image.format == "PNG" and image.mode in ("RGB", "L"):
        return data, height, width, "png"
      buffer = io.BytesIO()
      image.convert("RGB").save(buffer, format="JPEG", quality=_JPEG_QUALITY)
      return buffer.getvalue(), height, width, "jpeg"
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise InvalidExampleError(
        f"Corrupt or unreadable image {path}: {e}") from e


def _check_label(label: Any, spec: ExampleSpec, height: int, width: int,
                 num_classes: Optional[int], ignore_label: int) -> np.ndarray:
  """Validates a label array against its image; returns uint8 [H, W]."""
  label = np.asarray(label)
  if label.ndim == 3 and label.shape[-1] == 1:
    label = label[..., 0]
  if label.ndim != 2:
    raise InvalidExampleError(
        f"Label {spec.label_source} of image {spec.image_path} has shape "
        f"{label.shape}; expected [height, width].")
  if label.dtype != np.uint8:
    if not np.issubdtype(label.dtype, np.integer) and label.dtype != bool:
      raise InvalidExampleError(
          f"Label {spec.label_source} has dtype {label.dtype}; expected "
          "integer class ids.")
    if label.size and (label.min() < 0 or label.max() > 255):
      raise InvalidExampleError(
          f"Label {spec.label_source} has values outside [0, 255] "
          f"(min {label.min()}, max {label.max()}).")
    label = label.astype(np.uint8)
  if label.shape != (height, width):
    raise InvalidExampleError(
        f"Label {spec.label_source} is {label.shape[1]}x{label.shape[0]} "
        f"(width x height) but image {spec.image_path} is {width}x{height}.")
  if num_classes is not None:
    values = np.unique(label)
    bad = [int(v) for v in values if v >= num_classes and v != ignore_label]
    if bad:
      raise InvalidExampleError(
          f"Label {spec.label_source} has values {bad[:10]} outside "
          f"[0, {num_classes}) that are not the ignore label {ignore_label}.")
  return label


def _encode_one(index: int, spec: ExampleSpec,
                read_label: Callable[[ExampleSpec], np.ndarray],
                num_classes: Optional[int],
                ignore_label: int,
                keep_png: bool = False) -> "_Encoded | _Failed":
  """Reads, validates and encodes one example; never raises."""
  try:
    image_bytes, height, width, image_format = _load_image(spec.image_path,
                                                           keep_png)
    try:
      label = read_label(spec)
    except FileNotFoundError as e:
      raise InvalidExampleError(
          f"Image {spec.image_path} has no label file: {e}") from e
    except InvalidExampleError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise InvalidExampleError(
          f"Cannot read label {spec.label_source} of image "
          f"{spec.image_path}: {type(e).__name__}: {e}") from e
    label = _check_label(label, spec, height, width, num_classes, ignore_label)
    return _Encoded(
        index=index, key=spec.key, image_bytes=image_bytes, height=height,
        width=width, label_png=label_io.encode_label_png(label),
        label_histogram=np.bincount(label.ravel(), minlength=256),
        image_format=image_format)
  except InvalidExampleError as e:
    return _Failed(index, spec.key, str(e))
  except Exception as e:  # pylint: disable=broad-except
    return _Failed(index, spec.key,
                   f"{spec.image_path}: {type(e).__name__}: {e}")


def _encode_chunk(chunk: Sequence[Tuple[int, ExampleSpec]], read_label,
                  num_classes, ignore_label,
                  keep_png=False) -> List["_Encoded | _Failed"]:
  """Worker task: encodes a few consecutive examples."""
  return [_encode_one(i, spec, read_label, num_classes, ignore_label,
                      keep_png)
          for i, spec in chunk]


def _ordered_map(fn: Callable, tasks: Iterable, num_workers: int) -> Iterator:
  """Maps `fn` over `tasks` in order, in-process or in worker processes.

  Workers are started with 'spawn' (safe next to TensorFlow's threads), and
  at most `num_workers * _TASKS_PER_WORKER` tasks are in flight, so memory
  stays bounded however long the split is.
  """
  if num_workers <= 1:
    yield from map(fn, tasks)
    return
  context = multiprocessing.get_context("spawn")
  executor = concurrent.futures.ProcessPoolExecutor(
      max_workers=num_workers, mp_context=context)
  try:
    tasks = iter(tasks)
    pending = collections.deque(
        executor.submit(fn, t)
        for t in itertools.islice(tasks, num_workers * _TASKS_PER_WORKER))
    while pending:
      result = pending.popleft().result()
      for t in itertools.islice(tasks, 1):
        pending.append(executor.submit(fn, t))
      yield result
  finally:
    executor.shutdown(wait=True, cancel_futures=True)


# === Progress ===


class _Progress:
  """Logs count, rate and ETA at most every `interval_secs`."""

  def __init__(self, split: str, total: int, interval_secs: float = 10.0):
    self._split = split
    self._total = total
    self._interval = interval_secs
    self._start = time.monotonic()
    self._last = self._start

  def update(self, done: int, force: bool = False) -> None:
    now = time.monotonic()
    if not force and now - self._last < self._interval:
      return
    self._last = now
    elapsed = max(now - self._start, 1e-9)
    rate = done / elapsed
    eta = (self._total - done) / rate if rate > 0 else float("inf")
    logging.info("%s: %d/%d images (%.1f images/s, ETA %s)", self._split,
                 done, self._total, rate, _format_secs(eta))

  @property
  def elapsed(self) -> float:
    return time.monotonic() - self._start


def _format_secs(secs: float) -> str:
  if secs == float("inf"):
    return "?"
  secs = int(round(secs))
  return f"{secs // 3600:d}:{secs // 60 % 60:02d}:{secs % 60:02d}"


# === Writing a split ===


def _check_specs(specs: Sequence[ExampleSpec], split: str,
                 source: Optional[str]) -> None:
  where = f" (from {source})" if source else ""
  if not specs:
    raise ValueError(f"Split {split!r} has no examples{where}; the list is "
                     "empty.")
  seen = set()
  for spec in specs:
    if not isinstance(spec, ExampleSpec):
      raise TypeError(f"write_split expects ExampleSpec entries, got "
                      f"{type(spec).__name__}.")
    if spec.key in seen:
      raise ValueError(f"Split {split!r}{where} lists {spec.key!r} twice.")
    seen.add(spec.key)


def write_split(specs: Sequence[ExampleSpec],
                read_label: Callable[[ExampleSpec], np.ndarray],
                output_dir: str,
                split: str,
                num_shards: int,
                num_workers: int = 1,
                num_classes: Optional[int] = None,
                ignore_label: int = 255,
                skip_invalid: bool = False,
                source: Optional[str] = None,
                log_every_secs: float = 10.0,
                keep_png: bool = False) -> Dict[str, Any]:
  """Validates and writes one split as sharded TFRecords.

  Args:
    specs: The examples, in the order they will be stored.
    read_label: Top-level (picklable) function `spec -> uint8 [H, W]` ids.
    output_dir: Folder for the shards (created if missing).
    split: Split name; shards are `{split}-{i:05d}-of-{n:05d}.tfrecord`.
    num_shards: Number of shards; examples are split into contiguous runs.
    num_workers: Processes that read and encode; 1 runs in this process.
    num_classes: When set, label values must be in [0, num_classes) or equal
      `ignore_label`.
    ignore_label: The label value that marks void pixels.
    skip_invalid: Log and skip invalid examples instead of failing.
    source: Where `specs` came from (e.g. the list file), for messages.
    log_every_secs: Interval of progress logs.
    keep_png: Store PNG images losslessly as PNG (`image/format` png)
      instead of re-encoding them as JPEG.

  Returns:
    A summary dict: `split`, `num_examples` (written), `num_skipped`,
    `skipped` (list of (key, reason)), `shards` (paths), `label_pixels`
    (label value -> pixel count), `seconds`.

  Raises:
    ValueError: if `specs` is empty or has a duplicate key, or
      `num_shards` < 1.
    InvalidExampleError: naming the file and the problem, at the first
      invalid example, unless `skip_invalid`. No new final-named shard of
      this split is left behind.
  """
  # TensorFlow is imported here, not at module level, so that 'spawn' worker
  # processes (which import this module) start without it.
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top

  _check_write_args(specs, read_label, split, source, num_shards, num_workers)
  total = len(specs)
  final_paths = [tfrecord_io.shard_path(output_dir, split, i, num_shards)
                 for i in range(num_shards)]
  logging.info("Writing split %r: %d examples into %d shards in %s "
               "(%d worker(s)).", split, total, num_shards, output_dir,
               num_workers)
  encode = functools.partial(_encode_chunk, read_label=read_label,
                             num_classes=num_classes,
                             ignore_label=ignore_label, keep_png=keep_png)
  chunks = _chunks(list(enumerate(specs)))
  progress = _Progress(split, total, log_every_secs)
  writer = tfrecord_io.ShardWriter(final_paths)
  results_iter = _ordered_map(encode, chunks, num_workers)
  try:
    written, skipped, label_pixels = _write_results(
        results_iter, writer, split, total, num_shards, skip_invalid,
        progress)
    writer.commit()
    tfrecord_io.remove_stale_shards(output_dir, split, num_shards)
  except BaseException:
    results_iter.close()  # Stops the workers now, not at garbage collection.
    writer.abort()
    raise

  progress.update(total, force=True)
  logging.info("Split %r: wrote %d examples to %d shards, skipped %d, in "
               "%.1f s.", split, written, num_shards, len(skipped),
               progress.elapsed)
  return {
      "split": split, "num_examples": written, "num_skipped": len(skipped),
      "skipped": skipped, "shards": final_paths, "seconds": progress.elapsed,
      "label_pixels": {int(v): int(c) for v, c in enumerate(label_pixels)
                       if c}}


def _chunks(indexed: List[Tuple[int, ExampleSpec]]):
  """Work units for the encoders: runs of `_CHUNK_SIZE` examples."""
  return [indexed[i:i + _CHUNK_SIZE]
          for i in range(0, len(indexed), _CHUNK_SIZE)]


def _check_write_args(specs, read_label, split: str, source: Optional[str],
                      num_shards: int, num_workers: int) -> None:
  """Raises ValueError/TypeError, naming the problem, before any write."""
  _check_specs(specs, split, source)
  if num_shards < 1:
    raise ValueError(f"--num_shards must be at least 1, got {num_shards}.")
  if num_workers > 1:
    try:
      pickle.dumps((read_label, specs[0]))
    except Exception as e:  # pylint: disable=broad-except
      raise TypeError(
          "With num_workers > 1, read_label must be a top-level function and "
          f"label sources picklable: {e}") from e


def _write_results(results_iter, writer, split: str, total: int,
                   num_shards: int, skip_invalid: bool, progress):
  """Writes the encoded examples; returns (written, skipped, label_pixels)."""
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  skipped: List[Tuple[str, str]] = []
  label_pixels = np.zeros(256, dtype=np.int64)
  written = 0
  for results in results_iter:
    for result in results:
      if isinstance(result, _Failed):
        if not skip_invalid:
          raise InvalidExampleError(
              f"Split {split!r}, example {result.key!r}: {result.reason} "
              "(pass --skip_invalid to build the rest)")
        logging.warning("Skipping %r: %s", result.key, result.reason)
        skipped.append((result.key, result.reason))
        continue
      example = tfrecord_io.make_example(
          result.image_bytes, result.key, result.height, result.width,
          result.label_png, image_format=result.image_format)
      # Contiguous shards: example i goes to shard i * n // total, so the
      # shards, read in order, give the list order.
      writer.write(result.index * num_shards // total,
                   example.SerializeToString())
      label_pixels += result.label_histogram
      written += 1
    progress.update(results[-1].index + 1)
  if not written:
    raise InvalidExampleError(
        f"Split {split!r}: all {total} examples are invalid; nothing "
        "written.")
  return written, skipped, label_pixels


def format_summary(summaries: Sequence[Dict[str, Any]]) -> str:
  """One readable block for the summaries of several splits."""
  lines = []
  for s in summaries:
    lines.append(f"{s['split']}: {s['num_examples']} examples in "
                 f"{len(s['shards'])} shards, {s['num_skipped']} skipped "
                 f"({s['seconds']:.1f} s)")
    for key, reason in s["skipped"]:
      lines.append(f"  skipped {key}: {reason}")
  return "\n".join(lines)


# === Builder apps ===


def require_dir(path: str, flag: str) -> None:
  """Raises FileNotFoundError naming `--flag` if `path` is not a folder."""
  import os  # pylint: disable=g-import-not-at-top
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"--{flag}: folder not found: {path!r}.")


def require_file(path: str, flag: str) -> None:
  """Raises FileNotFoundError naming `--flag` if `path` is not a file."""
  import os  # pylint: disable=g-import-not-at-top
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(f"--{flag}: file not found: {path!r}.")


def define_writer_flags(num_shards: int = 4,
                        num_shards_help: str = "Shards per split.") -> None:
  """Defines the `write_split` flags every builder shares: --output_dir,
  --num_shards, --num_workers and --skip_invalid."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("output_dir", "./tfrecord",
                      "Folder for the TFRecord shards.")
  flags.DEFINE_integer("num_shards", num_shards, num_shards_help)
  flags.DEFINE_integer("num_workers", 1,
                       "Processes that read and encode examples (1: none).")
  flags.DEFINE_boolean("skip_invalid", False,
                       "Log and skip invalid examples instead of failing.")


def run_builder(main: Callable) -> None:
  """Runs a builder's absl `main`; bad input ends in one `ERROR:` line.

  Like `deeplab.common_flags.run_app`, but without importing the model code,
  so that the builder (and its spawned workers) start fast.
  """
  import sys  # pylint: disable=g-import-not-at-top
  from absl import app  # pylint: disable=g-import-not-at-top

  def checked_main(argv):
    try:
      return main(argv)
    except (ValueError, FileNotFoundError, FileExistsError,
            NotADirectoryError) as error:
      logging.error("%s", error)
      sys.exit(f"ERROR: {error}")
    except Exception as error:  # pylint: disable=broad-except
      # A full or read-only disk: one line naming the path (the writers
      # left nothing half-written).
      from deeplab.core import io_utils  # pylint: disable=g-import-not-at-top
      message = io_utils.explain_write_error(error)
      if message is None:
        raise
      logging.error("%s", message)
      sys.exit(f"ERROR: {message}")

  app.run(checked_main)
