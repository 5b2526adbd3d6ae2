"""The official DeepLab TFRecord format: Example keys, shard names, parsing.

Keeping official research/deeplab's keys and shard names lets users reuse
TFRecords they already built with the official tools, and lets TFRecords
built here be read by them.

Each `tf.train.Example` holds one image and its label:

  image/encoded                     JPEG (or PNG) bytes of the RGB image
  image/filename                    the example's key, e.g. `2007_000032`
  image/format                      `jpeg`
  image/height, image/width         image size in pixels
  image/segmentation/class/encoded  single-channel 8-bit PNG of class ids
  image/segmentation/class/format   `png`

Shards are named `{split}-{shard:05d}-of-{num_shards:05d}.tfrecord`; they
are written under temporary names and renamed when complete (`ShardWriter`).
"""

import os
import re
import struct
import uuid
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf

from deeplab.core import io_utils

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
LABEL_ENCODED = "image/segmentation/class/encoded"
LABEL_FORMAT = "image/segmentation/class/format"

_SHARD_RE = r"^{split}-(\d{{5}})-of-(\d{{5}})\.tfrecord$"
# `ShardWriter`'s temporaries: `<shard>.tfrecord.tmp-<pid>-<token>`.
_TEMP_SHARD_RE = re.compile(r"\.tfrecord\.tmp-(?P<pid>\d+)-[0-9a-f]+$")


def _bytes_feature(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def make_example(image_bytes: bytes, filename: str, height: int, width: int,
                 label_png_bytes: bytes,
                 image_format: str = "jpeg") -> tf.train.Example:
  """Builds one Example in the official format.

  Args:
    image_bytes: Encoded image.
    filename: The example's key (official builders store the list entry,
      without folder or extension).
    height: Image height in pixels.
    width: Image width in pixels.
    label_png_bytes: Single-channel 8-bit PNG of class ids.
    image_format: Format of `image_bytes` (`jpeg` or `png`).

  Returns:
    A tf.train.Example.
  """
  if isinstance(filename, str):
    filename = filename.encode("utf-8")
  return tf.train.Example(features=tf.train.Features(feature={
      IMAGE_ENCODED: _bytes_feature(image_bytes),
      IMAGE_FILENAME: _bytes_feature(filename),
      IMAGE_FORMAT: _bytes_feature(image_format.encode("utf-8")),
      IMAGE_HEIGHT: _int64_feature(height),
      IMAGE_WIDTH: _int64_feature(width),
      LABEL_ENCODED: _bytes_feature(label_png_bytes),
      LABEL_FORMAT: _bytes_feature(b"png"),
  }))


def shard_path(output_dir: str, split: str, shard_id: int,
               num_shards: int) -> str:
  """Path of one shard: `{output_dir}/{split}-00001-of-00004.tfrecord`."""
  if not 0 <= shard_id < num_shards:
    raise ValueError(f"shard_id {shard_id} is outside [0, {num_shards}).")
  name = f"{split}-{shard_id:05d}-of-{num_shards:05d}.tfrecord"
  return tf.io.gfile.join(output_dir, name)


def parse_shard_name(name: str, split: str) -> Optional[Tuple[int, int]]:
  """(shard_id, num_shards) if `name` is a shard file of `split`, else None.

  Temporary files of a build in progress (`*.tfrecord.tmp-*`) and shards of
  other splits (`train_aug-...` for `train`) do not match.
  """
  match = re.match(_SHARD_RE.format(split=re.escape(split)), name)
  return (int(match.group(1)), int(match.group(2))) if match else None


def list_shards(dataset_dir: str, split: str) -> List[str]:
  """Lists the shards of a split, in shard order.

  Args:
    dataset_dir: Folder holding the `{split}-*.tfrecord` shards.
    split: Split name, e.g. `train`.

  Returns:
    Sorted shard paths, all `num_shards` of them.

  Raises:
    ValueError: if `dataset_dir` is empty.
    FileNotFoundError: naming the folder, if it does not exist; naming the
      split and the `.tfrecord` files that do exist, if there are no shards
      for the split; naming the missing shards, if the set is incomplete.
    ValueError: if shards of two different builds (different shard counts)
      are mixed in the folder.
  """
  if not dataset_dir:
    raise ValueError("--dataset_dir is empty; set it to the folder that holds "
                     "the {split}-*.tfrecord shards.")
  if not tf.io.gfile.isdir(dataset_dir):
    raise FileNotFoundError(
        f"--dataset_dir {dataset_dir} does not exist or is not a folder.")
  names = sorted(tf.io.gfile.listdir(dataset_dir))
  shards = [(name,) + parsed for name in names
            if (parsed := parse_shard_name(name, split))]
  if not shards:
    existing = [n for n in names if n.endswith(".tfrecord")]
    shown = ", ".join(existing[:10]) + (" ..." if len(existing) > 10 else "")
    raise FileNotFoundError(
        f"No shards for split {split!r} in {dataset_dir} (expected "
        f"{split}-00000-of-NNNNN.tfrecord); .tfrecord files there: "
        f"{shown or 'none'}.")
  counts = sorted({total for _, _, total in shards})
  if len(counts) > 1:
    raise ValueError(
        f"Split {split!r} in {dataset_dir} mixes shards of builds with "
        f"{counts} shards; delete the stale ones.")
  total = counts[0]
  present = {shard_id for _, shard_id, _ in shards}
  missing = sorted(set(range(total)) - present)
  if missing:
    raise FileNotFoundError(
        f"Split {split!r} in {dataset_dir} is incomplete: shards {missing} of "
        f"{total} are missing.")
  return [tf.io.gfile.join(dataset_dir, name) for name, _, _ in shards]


class ShardWriter:
  """Writes shards in order under temporary names; `commit` renames them.

  Until `commit`, no final-named file is touched, so an aborted build leaves
  the folder as it was (earlier complete shards included).
  """

  def __init__(self, final_paths: Sequence[str]):
    """Creates the writer; `final_paths` are the shards in order."""
    self._final_paths = list(final_paths)
    folder = os.path.dirname(self._final_paths[0]) or "."
    tf.io.gfile.makedirs(folder)
    # Shards of an earlier build killed mid-way (SIGKILL): theirs only.
    io_utils.remove_stale_temporaries(folder, _TEMP_SHARD_RE,
                                      "temporary shard")
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    self._temp_paths = [f"{p}.tmp-{token}" for p in final_paths]
    self._shard = -1
    self._writer = None

  def _advance_to(self, shard: int) -> None:
    """Closes the current shard and opens the next ones up to `shard`
    (skipped shards are created empty)."""
    while self._shard < shard:
      if self._writer is not None:
        self._writer.close()
      self._shard += 1
      self._writer = tf.io.TFRecordWriter(self._temp_paths[self._shard])

  def write(self, shard: int, record: bytes) -> None:
    if shard < self._shard:
      raise ValueError(f"Shard {shard} was already closed.")
    self._advance_to(shard)
    self._writer.write(record)

  def commit(self) -> None:
    """Completes every shard and renames all of them to their final names."""
    self._advance_to(len(self._final_paths) - 1)
    self._writer.close()
    self._writer = None
    for temp, final in zip(self._temp_paths, self._final_paths):
      tf.io.gfile.rename(temp, final, overwrite=True)

  def abort(self) -> None:
    """Closes and deletes the temporary files."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None
    for path in self._temp_paths:
      if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def remove_stale_shards(output_dir: str, split: str, num_shards: int) -> None:
  """Deletes shards of `split` left by an earlier build with another count."""
  for name in tf.io.gfile.listdir(output_dir):
    parsed = parse_shard_name(name, split)
    if parsed and parsed[1] != num_shards:
      logging.info("Removing stale shard %s from an earlier build.", name)
      tf.io.gfile.remove(tf.io.gfile.join(output_dir, name))


# Shards opened by readers in this process, so that a read error (which
# names no file) can be traced to one (`explain_read_error`).
_OPENED_SHARDS = set()


def read_records(path, skip_corrupt: bool = False) -> tf.data.Dataset:
  """The serialized records of one shard (for `interleave` or `flat_map`).

  Args:
    path: The shard's path (a string or a scalar string tensor).
    skip_corrupt: Skip records that cannot be read (a truncated or corrupted
      shard) instead of failing; `log_corrupt_shards` reports them.
  """
  dataset = tf.data.TFRecordDataset(path)
  return dataset.ignore_errors() if skip_corrupt else dataset


def note_opened(files: Sequence[str]) -> None:
  """Remembers shards being read, for `explain_read_error`."""
  _OPENED_SHARDS.update(str(f) for f in files)


def _walk_records(path: str) -> Iterator[Tuple[int, bool]]:
  """(start offset, complete) of each record of a shard, from its headers
  (seeks only, no data read); the walk ends at the first incomplete record:
  the file ends inside it, or its header's length is corrupt."""
  size = os.path.getsize(path)
  offset = 0
  with open(path, "rb") as f:
    while offset < size:
      f.seek(offset)
      header = f.read(12)
      end = (offset + 12 + struct.unpack("<Q", header[:8])[0] + 4
             if len(header) == 12 else size + 1)
      yield offset, end <= size
      if end > size:
        return
      offset = end


def find_truncated(path: str) -> Optional[Tuple[int, int]]:
  """Walks a shard's record headers (seeks only, no data read).

  Returns:
    (complete records, byte offset of the broken one) when the file ends
    inside a record or a header's length is corrupt; None when intact.
  """
  for count, (offset, complete) in enumerate(_walk_records(path)):
    if not complete:
      return count, offset
  return None


def _record_index_at(path: str, offset: int) -> Optional[int]:
  """Index of the record whose header or data starts at byte `offset` (TF's
  "corrupted record at" names the data for a bad data checksum), else None."""
  for index, (start, _) in enumerate(_walk_records(path)):
    if start > offset:
      return None
    if offset in (start, start + 12):
      return index
  return None


def _fails_checksum(path: str, index: int) -> bool:
  """Whether reading `path` up to record `index` raises a checksum error."""
  try:
    for _ in tf.data.TFRecordDataset(path).take(index + 1):
      pass
  except tf.errors.DataLossError:
    return True
  return False


def find_corrupted(paths: Sequence[str], offset: int) -> List[str]:
  """The shards among `paths` whose record at `offset` fails its checksum."""
  found = []
  for path in paths:
    if not os.path.exists(path):
      continue
    index = _record_index_at(path, offset)
    if index is not None and _fails_checksum(path, index):
      found.append(path)
  return found


def explain_read_error(error: BaseException) -> Optional[str]:
  """One line naming the broken shard of a TFRecord read error, or None."""
  text = str(error)
  if not isinstance(error, tf.errors.DataLossError) and not re.search(
      r"(truncated|corrupted) record", text):
    return None
  for path in sorted(_OPENED_SHARDS):
    broken = os.path.exists(path) and find_truncated(path)
    if broken:
      return _truncated_message(path, broken)
  detail = re.search(r"(truncated|corrupted) record at (\d+)", text)
  what = detail.group(0) if detail else "data loss"
  suffix = (" Rebuild it, or pass --skip_corrupt_records to skip what "
            "cannot be read.")
  if detail:
    corrupted = find_corrupted(sorted(_OPENED_SHARDS), int(detail.group(2)))
    if len(corrupted) == 1:
      return f"TFRecord shard {corrupted[0]} is corrupted ({what})." + suffix
  return (f"A TFRecord shard is corrupted ({what}) in one of: "
          f"{', '.join(sorted(_OPENED_SHARDS))}." + suffix)


def check_shards(files: Sequence[str], skip_corrupt: bool = False) -> None:
  """Fails fast on a truncated shard (a header walk: cheap), naming it.

  With `skip_corrupt`, nothing is raised: the pipeline logs them
  (`log_corrupt_shards`) and skips what it cannot read.

  Raises:
    ValueError: naming the first truncated shard.
  """
  if skip_corrupt:
    return
  for path in files:
    broken = os.path.exists(path) and find_truncated(path)
    if broken:
      raise ValueError(_truncated_message(path, broken))


def _truncated_message(path: str, broken: Tuple[int, int]) -> str:
  return (f"TFRecord shard {path} is truncated: {broken[0]} complete "
          f"records, then the file ends inside the record at byte "
          f"{broken[1]} (an interrupted copy or build?). Rebuild or recopy "
          "it, or pass --skip_corrupt_records to skip what cannot be read.")


def log_corrupt_shards(files: Sequence[str]) -> int:
  """Logs the truncated shards among `files` (for --skip_corrupt_records);
  returns their number."""
  broken = 0
  for path in files:
    found = find_truncated(path) if os.path.exists(path) else None
    if found:
      broken += 1
      logging.warning("--skip_corrupt_records: %s is truncated after %d "
                      "records (byte %d); its remainder is skipped.", path,
                      found[0], found[1])
  return broken


_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string),
    IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    LABEL_ENCODED: tf.io.FixedLenFeature((), tf.string),
    LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="png"),
}


def parse_example(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Parses and decodes one serialized Example (graph-safe, for tf.data).

  Args:
    serialized: Scalar string tensor.

  Returns:
    A dict with `image` uint8 [H, W, 3], `label` uint8 [H, W, 1] (class ids),
    `filename` string scalar, and `height`, `width` int32 scalars (the
    decoded image's size).
  """
  parsed = tf.io.parse_single_example(serialized, _FEATURES)
  image = tf.io.decode_image(parsed[IMAGE_ENCODED], channels=3,
                             expand_animations=False)
  image.set_shape([None, None, 3])
  # Labels are single-channel index PNGs, so channels=1 gives the class ids.
  label = tf.io.decode_png(parsed[LABEL_ENCODED], channels=1)
  image_shape = tf.shape(image)
  check = tf.debugging.Assert(
      tf.reduce_all(tf.equal(image_shape[:2], tf.shape(label)[:2])),
      ["Label size differs from image size in TFRecord example",
       parsed[IMAGE_FILENAME], "image:", image_shape, "label:",
       tf.shape(label)])
  with tf.control_dependencies([check]):
    label = tf.identity(label)
  return {
      "image": image,
      "label": label,
      "filename": parsed[IMAGE_FILENAME],
      "height": image_shape[0],
      "width": image_shape[1],
  }
