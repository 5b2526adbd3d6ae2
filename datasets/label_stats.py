"""Per-class pixel statistics of labels, and the class weights they give.

The one implementation of the class-weight formulas, used by training
(`--class_weighting`, `core/training/class_weights.py`) and by the
`dataset_stats` tool, so both report the same weights:

* `balanced`: `w_c = N / (K * n_c)` (scikit-learn's "balanced"), where `n_c`
  is the number of pixels of class c, N their total and K the number of
  classes present;
* `median_frequency`: `w_c = median(f) / f_c` with `f_c = n_c / P_c`, where
  `P_c` is the number of labelled pixels of the images in which c appears
  (Eigen & Fergus, ICCV 2015; used by SegNet).

Classes that never appear get weight 0 (they have no pixel to weigh). The
ignore label is never counted as a class.
"""

import dataclasses
from typing import Iterable, Optional, Tuple

import numpy as np

WEIGHT_SCHEMES = ("balanced", "median_frequency")


@dataclasses.dataclass
class LabelStatistics:
  """Pixel counts of a set of label maps.

  Attributes:
    counts: int64 [C]: pixels of each class.
    image_pixels: int64 [C]: labelled pixels of the images in which each
      class appears.
    ignored_pixels: Pixels with the ignore label.
    num_images: Label maps counted.
    out_of_range_pixels: Pixels outside [0, C) other than the ignore label
      (counted instead of raising when `add` is told to).
    out_of_range_values: Those values.
    out_of_range_images: Names of the label maps that have them.
  """

  counts: np.ndarray
  image_pixels: np.ndarray
  ignored_pixels: int = 0
  num_images: int = 0
  out_of_range_pixels: int = 0
  out_of_range_values: set = dataclasses.field(default_factory=set)
  out_of_range_images: list = dataclasses.field(default_factory=list)

  def add(self, label: np.ndarray, ignore_label: int, name: str,
          count_out_of_range: bool = False) -> None:
    """Counts one label map.

    Args:
      label: Class ids.
      ignore_label: Not counted as a class.
      name: Named in errors and in `out_of_range_images`.
      count_out_of_range: Count values outside the classes (left out of the
        class counts) instead of raising.

    Raises:
      ValueError: naming `name`, on a value that is neither a class nor
        the ignore label (unless `count_out_of_range`).
    """
    num_classes = len(self.counts)
    label = np.asarray(label).reshape(-1).astype(np.int64)
    ignored = label == ignore_label
    kept = label[~ignored]
    outside = (kept < 0) | (kept >= num_classes)
    bad = np.unique(kept[outside])
    if bad.size and count_out_of_range:
      self.out_of_range_pixels += int(outside.sum())
      self.out_of_range_values.update(bad.tolist())
      self.out_of_range_images.append(name)
      kept = kept[~outside]
    elif bad.size:
      raise ValueError(
          f"{name} has label values {bad.tolist()} outside [0, "
          f"{num_classes}) that are not the ignore label {ignore_label}.")
    image_counts = np.bincount(kept, minlength=num_classes)
    self.counts += image_counts
    self.image_pixels[image_counts > 0] += kept.size
    self.ignored_pixels += int(ignored.sum())
    self.num_images += 1


def empty_statistics(num_classes: int) -> LabelStatistics:
  return LabelStatistics(np.zeros(num_classes, np.int64),
                         np.zeros(num_classes, np.int64))


def class_pixel_statistics(labels: Iterable[np.ndarray], num_classes: int,
                           ignore_label: int) -> Tuple[np.ndarray, np.ndarray]:
  """(`counts`, `image_pixels`), int64 [C] each, of label maps.

  Raises:
    ValueError: on a label value that is neither a class nor ignored.
  """
  stats = empty_statistics(num_classes)
  for index, label in enumerate(labels):
    stats.add(label, ignore_label, f"Label map {index}")
  return stats.counts, stats.image_pixels


def split_statistics(dataset_dir: str, split: str, num_classes: int,
                     ignore_label: int, max_images: Optional[int] = None,
                     count_out_of_range: bool = False) -> LabelStatistics:
  """The statistics of a built split's TFRecord labels.

  Raises:
    FileNotFoundError: naming the folder or split without shards.
    ValueError: naming the image whose label has values outside the class
      set (other than the ignore label), unless `count_out_of_range`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  files = tfrecord_io.list_shards(dataset_dir, split)
  dataset = tf.data.TFRecordDataset(files).map(
      tfrecord_io.parse_example, num_parallel_calls=tf.data.AUTOTUNE)
  if max_images:
    dataset = dataset.take(max_images)
  stats = empty_statistics(num_classes)
  for example in dataset:
    filename = example["filename"].numpy().decode()
    if count_out_of_range:
      stats.add(example["label"].numpy(), ignore_label, filename, True)
    else:
      stats.add(example["label"].numpy(), ignore_label,
                f"Image {filename} in {dataset_dir}")
  return stats


def balanced_weights(counts: np.ndarray) -> np.ndarray:
  """`N / (K * n_c)` for present classes, 0 for absent ones."""
  counts = np.asarray(counts, np.float64)
  present = counts > 0
  weights = np.zeros_like(counts)
  weights[present] = counts.sum() / (present.sum() * counts[present])
  return weights


def median_frequency_weights(counts: np.ndarray,
                             image_pixels: np.ndarray) -> np.ndarray:
  """`median(f) / f_c` with `f_c = n_c / P_c`, 0 for absent classes."""
  counts = np.asarray(counts, np.float64)
  present = counts > 0
  frequencies = np.zeros_like(counts)
  frequencies[present] = counts[present] / np.asarray(image_pixels,
                                                      np.float64)[present]
  weights = np.zeros_like(counts)
  weights[present] = np.median(frequencies[present]) / frequencies[present]
  return weights


def weights_for_scheme(scheme: str, counts: np.ndarray,
                       image_pixels: np.ndarray) -> np.ndarray:
  """The weights of `balanced` or `median_frequency` from statistics."""
  if scheme == "balanced":
    return balanced_weights(counts)
  if scheme == "median_frequency":
    return median_frequency_weights(counts, image_pixels)
  raise ValueError(f"--class_weighting {scheme!r} is not computed from "
                   "statistics; use balanced or median_frequency.")
