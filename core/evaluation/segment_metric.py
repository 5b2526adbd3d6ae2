"""Shared base of the panoptic (image-parsing) metrics: PQ and parsing covering.

A panoptic segmentation gives every pixel a category and an instance id. Both
metrics compare a predicted segmentation with the ground truth image by
image, accumulate per-category sums, and derive the final figure from the
sums only, so that accumulators of disjoint image sets can be merged (for
parallel evaluation). This follows the interface of official
`research/deeplab/evaluation/base_metric.py`.

Segments are encoded as one integer: `category * max_instances_per_category
+ instance`; a (ground-truth, predicted) pair of segments as
`gt_segment * offset + pred_segment`, so one `np.unique` over the image
counts every non-empty intersection.
"""

import abc
from typing import Dict, Optional, Sequence

import numpy as np


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  """Element-wise numerator / denominator, 0 where the denominator is ~0.

  Official `base_metric.realdiv_maybe_zero` (|denominator| < 1e-10 gives 0).
  """
  numerator = np.asarray(numerator, np.float64)
  denominator = np.asarray(denominator, np.float64)
  small = np.abs(denominator) < 1e-10
  return np.where(small, 0.0, numerator / np.where(small, 1.0, denominator))


class SegmentMetric(abc.ABC):
  """Accumulates a panoptic metric over images.

  Args:
    num_categories: Number of categories; category ids are in
      [0, num_categories).
    ignored_label: The "void" category (COCO panoptic: 0). Its instance 0 is
      void; its other instances are crowd regions.
    max_instances_per_category: Instance ids must be below this.
    offset: Must exceed every segment id (`category *
      max_instances_per_category + instance`), so that `gt * offset + pred`
      identifies a pair of segments.
  """

  def __init__(self, num_categories: int, ignored_label: int,
               max_instances_per_category: int, offset: int):
    self.num_categories = int(num_categories)
    self.ignored_label = int(ignored_label)
    self.max_instances_per_category = int(max_instances_per_category)
    self.offset = int(offset)
    self.reset()

  # === What a subclass provides ===

  @abc.abstractmethod
  def reset(self) -> None:
    """Clears the accumulated sums."""

  @abc.abstractmethod
  def compare_and_accumulate(self, gt_category: np.ndarray,
                             gt_instance: np.ndarray,
                             pred_category: np.ndarray,
                             pred_instance: np.ndarray) -> float:
    """Adds one image's comparison; returns the metric so far."""

  @abc.abstractmethod
  def merge(self, other: "SegmentMetric") -> None:
    """Adds the sums of `other` (same settings, other images) into self."""

  @abc.abstractmethod
  def result_per_category(self) -> np.ndarray:
    """The metric per category, shape [num_categories]."""

  @abc.abstractmethod
  def _valid_categories(self) -> np.ndarray:
    """Boolean [num_categories]: categories that take part in the mean."""

  @abc.abstractmethod
  def _per_category_fields(self) -> Dict[str, np.ndarray]:
    """Field name -> per-category values averaged in `detailed_results`."""

  # === Shared ===

  def result(self) -> float:
    """The mean over valid categories (0 when there are none)."""
    valid = self._valid_categories()
    if not np.any(valid):
      return 0.0
    return float(np.mean(self.result_per_category()[valid]))

  def detailed_results(
      self, is_thing: Optional[Sequence[bool]] = None) -> Dict[str, Dict]:
    """Means over "All" valid categories, and over "Things" and "Stuff".

    Args:
      is_thing: Optional boolean per category (True for a "thing" category,
        False for "stuff"); it may be shorter than num_categories (missing
        categories count as stuff, as official `_is_thing_array` pads them).

    Returns:
      {"All": {field: mean, ..., "n": count}, "Things": ..., "Stuff": ...}.
    """
    valid = self._valid_categories()
    subsets = {"All": valid}
    if is_thing is not None:
      things = np.zeros(self.num_categories, bool)
      flags = np.asarray(is_thing, bool)[:self.num_categories]
      things[:len(flags)] = flags
      subsets["Things"] = valid & things
      subsets["Stuff"] = valid & ~things
    fields = self._per_category_fields()
    results = {}
    for name, subset in subsets.items():
      row = {key: (float(np.mean(values[subset])) if subset.any() else 0.0)
             for key, values in fields.items()}
      row["n"] = int(np.sum(subset))
      results[name] = row
    return results

  def per_category_results(self) -> Dict[int, Dict[str, float]]:
    """{category id: {field: value}} for every valid category."""
    fields = self._per_category_fields()
    return {int(c): {key: float(values[c]) for key, values in fields.items()}
            for c in np.flatnonzero(self._valid_categories())}

  def format_detailed_results(self, is_thing=None, print_digits: int = 3) -> str:
    """A text table of `detailed_results` in percent (official layout)."""
    results = self.detailed_results(is_thing)
    keys = list(self._per_category_fields())
    header = [""] + [k.upper() for k in keys] + ["N"]
    rows = [[name] + [f"{round(row[k], print_digits) * 100:g}" for k in keys] +
            [str(row["n"])] for name, row in results.items()]
    widths = [max(len(r[i]) for r in [header] + rows)
              for i in range(len(header))]
    lines = []
    for r in [header] + rows:
      lines.append(" | ".join([r[0].ljust(widths[0])] + [
          cell.rjust(w) for cell, w in zip(r[1:], widths[1:])]))
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)

  # === Helpers for subclasses ===

  def _segment_ids(self, category: np.ndarray,
                   instance: np.ndarray) -> np.ndarray:
    """Checks one image's maps and encodes (category, instance) as one id."""
    category = np.asarray(category).astype(np.int64)
    instance = np.asarray(instance).astype(np.int64)
    if category.shape != instance.shape:
      raise ValueError(f"Category map {category.shape} and instance map "
                       f"{instance.shape} differ in shape.")
    if instance.size and (instance.min() < 0 or
                          instance.max() >= self.max_instances_per_category):
      raise ValueError(
          f"Instance ids must be in [0, {self.max_instances_per_category}) "
          f"(max_instances_per_category); got {instance.max()}.")
    bad = (category < 0) | ((category >= self.num_categories) &
                            (category != self.ignored_label))
    if np.any(bad):
      raise ValueError(
          f"Category id {category[bad][0]} is outside [0, "
          f"{self.num_categories}) (num_categories) and is not the ignored "
          f"label {self.ignored_label}.")
    return category * self.max_instances_per_category + instance

  def _intersections(self, gt_category, gt_instance, pred_category,
                     pred_instance):
    """Every non-empty (gt segment, predicted segment) pair and its area.

    Returns:
      (gt_segment, pred_segment, area): int64 arrays, one entry per pair.
    """
    gt = self._segment_ids(gt_category, gt_instance)
    pred = self._segment_ids(pred_category, pred_instance)
    if gt.shape != pred.shape:
      raise ValueError(f"Ground truth {gt.shape} and prediction {pred.shape} "
                       "differ in shape.")
    if max(gt.max(initial=0), pred.max(initial=0)) >= self.offset:
      raise ValueError(f"offset {self.offset} must exceed every segment id "
                       "(category * max_instances_per_category + instance).")
    pairs, areas = np.unique(gt * self.offset + pred, return_counts=True)
    return pairs // self.offset, pairs % self.offset, areas.astype(np.int64)

  def _category(self, segment: np.ndarray) -> np.ndarray:
    return segment // self.max_instances_per_category
