"""Scores a folder of prediction PNGs made elsewhere, with no model.

Ground truth is a folder of PNGs or a split of our TFRecords. Two layouts:

* `cityscapes`: as cityscapesscripts' `evalPixelLevelSemanticLabeling`
  reads them. Predictions are labelId PNGs (0..33) named
  `<city>_<seq>_<frame>*.png` (e.g. `..._leftImg8bit.png`, what
  `evaluate.py --cityscapes_results_dir` writes); ground truth is
  `*_gtFine_labelIds.png` (folders searched recursively, other annotation
  files beside them such as `*_color.png` are not ground truth) or the
  TFRecords' trainIds. labelIds map to the 19 trainIds through
  cityscapesscripts' table; a predicted labelId that is not evaluated
  (e.g. 0, `unlabeled`) misses its pixel's class and is a false positive of
  none, exactly as cityscapesscripts scores it.
  Predictions in trainIds (what `evaluate.py --save_predictions` writes)
  need `predictions_are_train_ids`: trainIds 0..18 are valid labelIds too,
  so they cannot be told apart.
* `index` (VOC, ADE20K, custom): predictions and ground truth are
  single-channel index PNGs (palette or greyscale; RGB colour PNGs of the
  dataset's colormap are mapped back) of the same file stem; ground-truth
  pixels equal to the ignore label are not scored.

Prediction files named `*_overlay.png` (the overlays `--save_predictions`
writes beside its PNGs) are not predictions and are passed over.

Every ground-truth file needs exactly one prediction and every prediction
a ground truth; anything else is an error naming the files, never a skip.

Speed: PNG decoding dominates; PIL releases the GIL while decoding, so
pairs are decoded in a thread pool with a bounded number in flight (memory
stays flat over any number of images). Each pair is counted as one
`joint_histogram` of raw values (one uint16 code and one bincount per
pixel); the labelId -> trainId tables are applied once, to the summed
65536 counts, not to every pixel.

Example:

  results = score_predictions("/runs/cs_results", cityscapes_descriptor,
                              ground_truth_dir="/data/cityscapes/gtFine/val")
"""

import collections
import concurrent.futures
import dataclasses
import io
import os
import re
import time
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

from absl import logging
import numpy as np
from PIL import Image

from deeplab.core.evaluation import metrics as metrics_lib
from deeplab.datasets import label_io

CITYSCAPES = "cityscapes"
INDEX = "index"
_INVALID = -2  # A value that must not occur in a label or prediction.
_NOT_SCORED = -1  # A ground-truth value left out of the metrics.
_GT_SUFFIX = "_gtFine_labelIds.png"
_CITYSCAPES_NAME = re.compile(r"^([^_]+_\d+_\d+)(?:_.*)?\.png$")
_INDEX_MODES = ("L", "P", "1")
_OVERLAY_SUFFIX = "_overlay.png"


@dataclasses.dataclass(frozen=True)
class Pair:
  """One prediction and its ground truth (a path, or PNG bytes)."""
  key: str
  prediction: str
  ground_truth: Union[str, bytes]
  ground_truth_name: str


def layout_for(dataset_name: str) -> str:
  """The file layout of a dataset: `cityscapes` or `index`."""
  return CITYSCAPES if dataset_name == "cityscapes" else INDEX


# === Value tables ===


def _cityscapes_tables(num_classes: int, ground_truth_are_label_ids: bool,
                       predictions_are_train_ids: bool):
  from deeplab.datasets import build_cityscapes_data  # pylint: disable=g-import-not-at-top
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  to_train = build_cityscapes_data.label_id_to_train_id().astype(np.int64)
  known = np.zeros(256, bool)
  known[[l.id for l in cs_labels.labels if 0 <= l.id < 256]] = True
  scored = known & (to_train < num_classes)
  predictions = np.where(scored, to_train,
                         np.where(known, num_classes, _INVALID))
  if predictions_are_train_ids:  # 255: predicted void, a miss.
    predictions = _index_table(num_classes, None)
    predictions[build_cityscapes_data.IGNORE_LABEL] = num_classes
  if ground_truth_are_label_ids:
    labels = np.where(scored, to_train,
                      np.where(known, _NOT_SCORED, _INVALID))
  else:  # TFRecords hold trainIds, 255 for void.
    labels = _index_table(num_classes, build_cityscapes_data.IGNORE_LABEL)
  return labels, predictions


def _index_table(num_classes: int, ignore_label: Optional[int]) -> np.ndarray:
  values = np.arange(256)
  table = np.where(values < num_classes, values, _INVALID)
  if ignore_label is not None and 0 <= ignore_label < 256:
    table[ignore_label] = _NOT_SCORED
  return table


def value_tables(layout: str, num_classes: int, ignore_label: int,
                 ground_truth_are_label_ids: bool,
                 predictions_are_train_ids: bool = False):
  """(label_classes, prediction_classes) [256] for `confusion_from_joint`."""
  if layout == CITYSCAPES:
    return _cityscapes_tables(num_classes, ground_truth_are_label_ids,
                              predictions_are_train_ids)
  return _index_table(num_classes, ignore_label), _index_table(num_classes,
                                                               None)


# === Matching files ===


def _walk_pngs(folder: str, flag: str) -> List[str]:
  if not os.path.isdir(folder):
    raise NotADirectoryError(f"--{flag} {folder} is not a folder.")
  paths = []
  for root, _, names in os.walk(folder):
    paths.extend(os.path.join(root, n) for n in names if n.endswith(".png"))
  return sorted(paths)


def prediction_key(name: str, layout: str) -> Optional[str]:
  """`frankfurt_000000_000294_leftImg8bit.png` -> `frankfurt_000000_000294`.

  In the index layout the key is the file stem. None when a Cityscapes
  name does not follow `<city>_<seq>_<frame>*.png`.
  """
  name = os.path.basename(name)
  if layout == CITYSCAPES:
    match = _CITYSCAPES_NAME.match(name if name.endswith(".png")
                                   else name + ".png")
    return match.group(1) if match else None
  return os.path.splitext(name)[0]


def index_predictions(predictions_dir: str, layout: str) -> Dict[str, str]:
  """{key: path} of every prediction PNG (searched recursively).

  Raises:
    ValueError: naming a badly named file, or two files with one key.
    FileNotFoundError: when the folder holds no PNG.
  """
  found = {}
  for path in _walk_pngs(predictions_dir, "predictions_dir"):
    if path.endswith(_OVERLAY_SUFFIX):
      continue  # evaluate.py --save_predictions' overlays, not predictions.
    key = prediction_key(path, layout)
    if key is None:
      raise ValueError(f"Prediction {path} is not named "
                       "<city>_<seq>_<frame>*.png (Cityscapes layout).")
    if key in found:
      raise ValueError(f"Two predictions for {key}: {found[key]} and {path}.")
    found[key] = path
  if not found:
    raise FileNotFoundError(f"--predictions_dir {predictions_dir} holds no "
                            ".png files.")
  return found


def _index_ground_truth(ground_truth_dir: str, layout: str) -> Dict[str, str]:
  found = {}
  for path in _walk_pngs(ground_truth_dir, "ground_truth_dir"):
    name = os.path.basename(path)
    if layout == CITYSCAPES:
      if not name.endswith(_GT_SUFFIX):
        continue  # *_color.png, *_instanceIds.png...: not the ground truth.
      key = name[:-len(_GT_SUFFIX)]
    else:
      key = os.path.splitext(name)[0]
    if key in found:
      raise ValueError(f"Two ground truth files for {key}: {found[key]} and "
                       f"{path}.")
    found[key] = path
  if not found:
    expected = f"*{_GT_SUFFIX}" if layout == CITYSCAPES else ".png"
    raise FileNotFoundError(f"--ground_truth_dir {ground_truth_dir} holds no "
                            f"{expected} files.")
  return found


def _examples(names: List[str]) -> str:
  return ", ".join(names[:3]) + (f" (and {len(names) - 3} more)"
                                 if len(names) > 3 else "")


def _unmatched_predictions_error(unused: List[str]) -> ValueError:
  return ValueError(
      f"{len(unused)} predictions have no ground truth: {_examples(unused)}.")


def _missing_prediction_error(missing: List[str],
                              predictions_dir: str) -> FileNotFoundError:
  return FileNotFoundError(
      f"{len(missing)} ground truth files have no prediction in "
      f"--predictions_dir {predictions_dir}: {_examples(missing)}.")


def pairs_from_folders(predictions_dir: str, ground_truth_dir: str,
                       layout: str) -> List[Pair]:
  """Matches prediction and ground-truth PNGs by key, sorted by key.

  Raises:
    FileNotFoundError: naming ground truth files without a prediction.
    ValueError: naming predictions without ground truth.
  """
  predictions = index_predictions(predictions_dir, layout)
  truths = _index_ground_truth(ground_truth_dir, layout)
  missing = sorted(truths[k] for k in truths if k not in predictions)
  if missing:
    raise _missing_prediction_error(missing, predictions_dir)
  unused = sorted(predictions[k] for k in predictions if k not in truths)
  if unused:
    raise _unmatched_predictions_error(unused)
  return [Pair(k, predictions[k], truths[k], truths[k]) for k in sorted(truths)]


def pairs_from_split(predictions_dir: str, dataset_dir: str, split: str,
                     layout: str) -> Iterator[Pair]:
  """Streams (prediction, TFRecord label PNG bytes) pairs in file order.

  Only the filename and label of each Example are parsed, not the image.

  Raises:
    FileNotFoundError: at the first example without a prediction.
    ValueError: after the split, naming predictions that matched nothing.
  """
  # Only this ground-truth source needs TensorFlow; scoring folders starts
  # without importing it (`evaluate.py --predictions_dir` in ~1 s).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  predictions = index_predictions(predictions_dir, layout)
  files = tfrecord_io.list_shards(dataset_dir, split)
  features = {
      tfrecord_io.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string),
      tfrecord_io.LABEL_ENCODED: tf.io.FixedLenFeature([], tf.string)}
  dataset = tf.data.TFRecordDataset(files).map(
      lambda record: tf.io.parse_single_example(record, features))
  used = set()
  for example in dataset.as_numpy_iterator():
    filename = example[tfrecord_io.IMAGE_FILENAME].decode()
    key = prediction_key(filename, layout) or filename
    name = f"{split} example {filename!r} in {dataset_dir}"
    if key not in predictions:
      raise _missing_prediction_error([name], predictions_dir)
    if key in used:
      raise ValueError(f"Split {split} of {dataset_dir} holds {key} twice.")
    used.add(key)
    yield Pair(key, predictions[key], example[tfrecord_io.LABEL_ENCODED],
               name)
  unused = sorted(predictions[k] for k in predictions if k not in used)
  if unused:
    raise _unmatched_predictions_error(unused)


# === Counting ===


def read_ids(source: Union[str, bytes], name: str,
             colormap: Optional[np.ndarray] = None) -> np.ndarray:
  """uint8 [H, W] values of a single-channel PNG (path or bytes).

  RGB(A) images are mapped to ids through `colormap` when one is given,
  and rejected otherwise.

  Raises:
    ValueError: naming the file, when it is unreadable or of another mode.
  """
  try:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes)
                    else source) as image:
      if image.mode in _INDEX_MODES:
        return np.asarray(image, np.uint8)
      if colormap is not None and image.mode in ("RGB", "RGBA"):
        return label_io.rgb_to_index(np.asarray(image.convert("RGB")),
                                     colormap, name=name)
      mode = image.mode
  except (OSError, SyntaxError) as e:  # PIL's errors for unreadable files.
    raise ValueError(f"Cannot read {name}: {e}") from e
  raise ValueError(f"{name} has PIL mode {mode!r}; expected a "
                   "single-channel 8-bit PNG of ids (mode L or P).")


@dataclasses.dataclass(frozen=True)
class Scoring:
  """How raw PNG values are read and scored (see `scoring_for`)."""
  layout: str
  num_classes: int
  label_classes: np.ndarray  # [256] class, _NOT_SCORED or _INVALID.
  prediction_classes: np.ndarray  # [256] class, num_classes or _INVALID.
  label_values: str  # What the ground truth holds, for errors.
  prediction_values: str  # What the predictions hold, for errors.
  colormap: Optional[np.ndarray] = None  # RGB PNGs (index layout only).


def scoring_for(descriptor, ground_truth_are_label_ids: bool,
                predictions_are_train_ids: bool = False) -> Scoring:
  """The `Scoring` of a dataset (`cityscapes`: Cityscapes layout)."""
  layout = layout_for(descriptor.name)
  num_classes = descriptor.num_classes
  labels, predictions = value_tables(layout, num_classes,
                                     descriptor.ignore_label,
                                     ground_truth_are_label_ids,
                                     predictions_are_train_ids)
  ids = f"class ids below {num_classes}"
  if layout == CITYSCAPES:
    label_ids = "labelIds 0..33" if ground_truth_are_label_ids else (
        f"trainIds below {num_classes} or 255")
    return Scoring(layout, num_classes, labels, predictions, label_ids,
                   f"trainIds below {num_classes} or 255"
                   if predictions_are_train_ids else "labelIds 0..33")
  return Scoring(layout, num_classes, labels, predictions,
                 f"{ids} or the ignore label {descriptor.ignore_label}", ids,
                 descriptor.colormap)


def _check_values(counts: np.ndarray, table: np.ndarray, name: str,
                  expected: str) -> None:
  bad = np.flatnonzero((counts > 0) & (table == _INVALID))
  if bad.size:
    raise ValueError(f"{name} holds values {bad.tolist()[:10]}; expected "
                     f"{expected}.")


def count_pair(pair: Pair, scoring: Scoring) -> np.ndarray:
  """Decodes one pair, checks it, and returns its `joint_histogram`."""
  truth = read_ids(pair.ground_truth, pair.ground_truth_name,
                   scoring.colormap)
  prediction = read_ids(pair.prediction, pair.prediction, scoring.colormap)
  if prediction.shape != truth.shape:
    raise ValueError(f"Prediction {pair.prediction} is {prediction.shape}, "
                     f"its ground truth {pair.ground_truth_name} "
                     f"{truth.shape}.")
  joint = metrics_lib.joint_histogram(truth, prediction)
  _check_values(joint.sum(axis=1), scoring.label_classes,
                pair.ground_truth_name, scoring.label_values)
  _check_values(joint.sum(axis=0), scoring.prediction_classes,
                pair.prediction, scoring.prediction_values)
  return joint


def accumulate(pairs: Iterable[Pair], count_fn, num_threads: int = 0,
               total: Optional[int] = None) -> Tuple[np.ndarray, int]:
  """Sums `count_fn(pair)` over pairs, decoded in parallel threads.

  At most 2 x num_threads pairs are in flight, so memory stays flat.

  Returns:
    (summed joint histogram, number of pairs).
  """
  num_threads = num_threads or os.cpu_count() or 1
  joint = np.zeros((256, 256), np.int64)
  count, start = 0, time.time()
  pool = concurrent.futures.ThreadPoolExecutor(num_threads)
  pending = collections.deque()
  try:
    for pair in pairs:
      pending.append(pool.submit(count_fn, pair))
      while len(pending) >= 2 * num_threads or (pending and
                                                 pending[0].done()):
        joint += pending.popleft().result()
        count += 1
        _log_progress(count, start, total)
    while pending:
      joint += pending.popleft().result()
      count += 1
      _log_progress(count, start, total)
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
  return joint, count


def _log_progress(count: int, start: float, total: Optional[int]) -> None:
  if count % 100:
    return
  rate = count / max(time.time() - start, 1e-9)
  eta = f", ETA {(total - count) / rate:.0f}s" if total else ""
  logging.info("Scored %d predictions (%.1f/s%s)", count, rate, eta)


def score_predictions(predictions_dir: str, descriptor,
                      ground_truth_dir: Optional[str] = None,
                      dataset_dir: Optional[str] = None,
                      split: Optional[str] = None,
                      num_threads: int = 0,
                      predictions_are_train_ids: bool = False) -> dict:
  """Scores every prediction PNG of a folder; see the module docstring.

  Args:
    predictions_dir: Folder of prediction PNGs.
    descriptor: The dataset's `DatasetDescriptor` (classes, ignore label,
      colormap; `cityscapes` selects the Cityscapes layout).
    ground_truth_dir: Folder of ground-truth PNGs; else `dataset_dir`.
    dataset_dir: Folder of TFRecords whose `split` is the ground truth.
    split: Split name, with `dataset_dir`.
    num_threads: Decode threads (0: one per CPU).
    predictions_are_train_ids: Cityscapes only: the predictions hold
      trainIds (0..18, 255 void), as `evaluate.py --save_predictions`
      writes them, not cityscapesscripts' labelIds.

  Returns:
    `metrics_from_confusion_matrix` plus `num_images`, `confusion_matrix`
    ([C, C]), `unscored_predictions` (per ground-truth class, pixels
    predicted as a class that is not evaluated), `predictions_dir` and
    `ground_truth`.
  """
  scoring = scoring_for(descriptor,
                        ground_truth_are_label_ids=bool(ground_truth_dir),
                        predictions_are_train_ids=predictions_are_train_ids)
  layout, num_classes = scoring.layout, scoring.num_classes
  if ground_truth_dir:
    pairs = pairs_from_folders(predictions_dir, ground_truth_dir, layout)
    total, source = len(pairs), ground_truth_dir
  else:
    pairs = pairs_from_split(predictions_dir, dataset_dir, split, layout)
    total, source = None, f"{dataset_dir} ({split})"
  start = time.time()
  joint, count = accumulate(pairs, lambda pair: count_pair(pair, scoring),
                            num_threads, total)
  confusion = metrics_lib.confusion_from_joint(
      joint, scoring.label_classes, scoring.prediction_classes, num_classes)
  results = metrics_lib.metrics_from_confusion_matrix(confusion)
  results.update(num_images=count,
                 confusion_matrix=confusion[:, :num_classes].tolist(),
                 unscored_predictions=confusion[:, num_classes].tolist(),
                 predictions_dir=predictions_dir, ground_truth=source)
  logging.info("Scored %d predictions in %.1fs: mIoU %.4f", count,
               time.time() - start, results["miou"])
  return results
