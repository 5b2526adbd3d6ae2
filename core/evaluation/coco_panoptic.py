"""Panoptic metrics over results in COCO panoptic format.

COCO panoptic format (https://cocodataset.org/#format-results): a JSON file
whose `annotations` give, per image, a PNG `file_name` and `segments_info`
(segment `id`, `category_id`, `iscrowd`), and a folder of RGB PNGs in which
each pixel's segment id is R + 256 G + 256^2 B. This module reads ground
truth and predictions in that format, turns each image into category and
instance maps, and accumulates Panoptic Quality or Parsing Covering, as
official `research/deeplab/evaluation/eval_coco_format.py` does:

* pixels that no segment claims are category 0, instance 0 (COCO's void
  when `ignored_label` is 0);
* instance ids count up per category in `segments_info` order; for the
  ignored category they start at 1 (0 is void);
* ground-truth crowd segments (`iscrowd` 1) become the ignored category;
  `iscrowd` in predictions is not read.

Images can be split over `num_workers` processes; their sums are merged.
"""

import dataclasses
import json
import multiprocessing
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from deeplab.core.evaluation import panoptic_quality
from deeplab.core.evaluation import parsing_covering
from deeplab.core.evaluation import segment_metric

METRICS = ("pq", "pc")


@dataclasses.dataclass
class PanopticEvalConfig:
  """Options of a COCO-format panoptic evaluation (official flag names).

  Attributes:
    metric: "pq" (Panoptic Quality) or "pc" (Parsing Covering).
    num_categories: Number of categories (COCO panoptic: 201).
    ignored_label: The void category (COCO: 0).
    max_instances_per_category: Instance ids per category stay below this.
    intersection_offset: Segment-pair encoding offset; None means
      (num_categories + 1) * max_instances_per_category.
    normalize_by_image_size: PC only: divide areas by image size.
    num_workers: Processes; 0 runs in this process, -1 uses every CPU.
  """
  metric: str = "pq"
  num_categories: int = 201
  ignored_label: int = 0
  max_instances_per_category: int = 256
  intersection_offset: Optional[int] = None
  normalize_by_image_size: bool = True
  num_workers: int = 0


def build_metric(config: PanopticEvalConfig) -> segment_metric.SegmentMetric:
  """The empty accumulator that `config` names."""
  offset = config.intersection_offset or (
      (config.num_categories + 1) * config.max_instances_per_category)
  args = (config.num_categories, config.ignored_label,
          config.max_instances_per_category, offset)
  if config.metric == "pq":
    return panoptic_quality.PanopticQuality(*args)
  if config.metric == "pc":
    return parsing_covering.ParsingCovering(
        *args, normalize_by_image_size=config.normalize_by_image_size)
  raise ValueError(f"metric must be one of {METRICS}; got {config.metric!r}.")


def rgb_to_segment_id(rgb: np.ndarray) -> np.ndarray:
  """Segment ids of a COCO panoptic PNG: R + 256 G + 256^2 B."""
  rgb = np.asarray(rgb, np.uint32)
  return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def read_segment_ids(path: str) -> np.ndarray:
  """Reads a COCO panoptic PNG as a 2-D array of segment ids."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"Panoptic PNG not found: {path}")
  with Image.open(path) as image:
    return rgb_to_segment_id(np.array(image.convert("RGB")))


def split_panoptic(annotation: Dict, segment_ids: np.ndarray,
                   ignored_label: int,
                   crowd_is_ignored: bool) -> Tuple[np.ndarray, np.ndarray]:
  """Category and instance maps of one image's segments (see module doc)."""
  category = np.zeros(segment_ids.shape, np.uint16)
  instance = np.zeros(segment_ids.shape, np.uint16)
  next_instance = {ignored_label: 1}
  for segment in annotation["segments_info"]:
    category_id = segment["category_id"]
    if crowd_is_ignored and segment.get("iscrowd", 0):
      category_id = ignored_label
    mask = segment_ids == segment["id"]
    category[mask] = category_id
    instance[mask] = next_instance.get(category_id, 0)
    next_instance[category_id] = next_instance.get(category_id, 0) + 1
  return category, instance


def matched_annotations(gt_json: Dict, pred_json: Dict) -> List[Tuple[Dict,
                                                                      Dict]]:
  """(ground truth, prediction) annotation pairs, one per ground-truth image.

  Raises:
    ValueError: naming the first ground-truth image with no prediction.
  """
  predictions = {a["image_id"]: a for a in pred_json["annotations"]}
  pairs = []
  for gt in gt_json["annotations"]:
    if gt["image_id"] not in predictions:
      raise ValueError(f"Predictions have no annotation for image_id "
                       f"{gt['image_id']} ({gt['file_name']}).")
    pairs.append((gt, predictions[gt["image_id"]]))
  return pairs


def _accumulate(metric: segment_metric.SegmentMetric, gt_folder: str,
                pred_folder: str, pairs: Iterable[Tuple[Dict, Dict]]):
  """Adds every (ground truth, prediction) image pair to `metric`."""
  for gt, pred in pairs:
    gt_maps = split_panoptic(
        gt, read_segment_ids(os.path.join(gt_folder, gt["file_name"])),
        metric.ignored_label, crowd_is_ignored=True)
    pred_maps = split_panoptic(
        pred, read_segment_ids(os.path.join(pred_folder, pred["file_name"])),
        metric.ignored_label, crowd_is_ignored=False)
    metric.compare_and_accumulate(*gt_maps, *pred_maps)
  return metric


def is_thing_array(categories: Sequence[Dict]) -> np.ndarray:
  """is_thing[category_id] from a COCO `categories` list (`isthing`)."""
  is_thing = np.zeros(max(c["id"] for c in categories) + 1, bool)
  for category in categories:
    is_thing[category["id"]] = bool(category.get("isthing", 0))
  return is_thing


def load_json(path: str) -> Dict:
  if not os.path.exists(path):
    raise FileNotFoundError(f"COCO panoptic JSON not found: {path}")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


@dataclasses.dataclass
class PanopticEvalResult:
  """What `evaluate_coco_panoptic` found.

  Attributes:
    results: {"All"|"Things"|"Stuff": {metric fields..., "n": categories}}.
    metric: The accumulated metric (per-category values and sums).
    is_thing: is_thing[category_id] from the ground-truth categories.
  """
  results: Dict[str, Dict]
  metric: segment_metric.SegmentMetric
  is_thing: np.ndarray

  def table(self, print_digits: int = 3) -> str:
    """The results as the official text table (percent)."""
    return self.metric.format_detailed_results(self.is_thing, print_digits)


def evaluate_coco_panoptic(gt_json_file: str, pred_json_file: str,
                           gt_folder: Optional[str] = None,
                           pred_folder: Optional[str] = None,
                           config: Optional[PanopticEvalConfig] = None):
  """Evaluates COCO-format panoptic predictions against ground truth.

  Args:
    gt_json_file: Ground-truth COCO panoptic JSON.
    pred_json_file: Predictions in the same format.
    gt_folder: Folder of ground-truth PNGs; default: the JSON path without
      `.json` (official convention).
    pred_folder: Folder of predicted PNGs; same default.
    config: `PanopticEvalConfig` (default: official defaults, PQ).

  Returns:
    A `PanopticEvalResult`.
  """
  config = config or PanopticEvalConfig()
  gt_json, pred_json = load_json(gt_json_file), load_json(pred_json_file)
  gt_folder = gt_folder or os.path.splitext(gt_json_file)[0]
  pred_folder = pred_folder or os.path.splitext(pred_json_file)[0]
  pairs = matched_annotations(gt_json, pred_json)
  metric = build_metric(config)
  workers = config.num_workers
  if workers == -1:
    workers = multiprocessing.cpu_count()
  if workers > 0:
    chunks = [pairs[i::workers] for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
      parts = pool.starmap(
          _accumulate, [(build_metric(config), gt_folder, pred_folder, chunk)
                        for chunk in chunks])
    for part in parts:
      metric.merge(part)
  else:
    _accumulate(metric, gt_folder, pred_folder, pairs)
  is_thing = is_thing_array(gt_json["categories"])
  return PanopticEvalResult(metric.detailed_results(is_thing=is_thing),
                            metric, is_thing)
