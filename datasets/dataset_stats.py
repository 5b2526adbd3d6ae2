"""Class statistics of a built split: pixel frequencies and class weights.

Reads the split's TFRecord shards and prints the image count, the pixel
count and frequency of every class, and two sets of class weights for the
loss (`--label_weights` of training):

  balanced          total / (num_classes * count_c)  (scikit-learn's
                    "balanced"), over labelled pixels
  median_frequency  median(freq) / freq_c, with freq_c = count_c / labelled
                    pixels of the images where c appears (Eigen & Fergus
                    2015)

(`datasets/label_stats.py`: the formulas `train.py --class_weighting` uses.)

The ignore label is left out. A class that never appears gets weight 0.

Usage:
  python -m deeplab.datasets.dataset_stats --dataset=pascal_voc_seg \\
    --dataset_dir=/data/voc/tfrecord --split=train [--output_json=stats.json]
"""

from typing import Any, Dict, Optional

from absl import flags
import numpy as np

from deeplab.datasets import build_data
from deeplab.datasets import label_stats

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the tool's flags (only when run as a program)."""
  flags.DEFINE_string("dataset", "pascal_voc_seg",
                      "Dataset name in the registry, or 'custom'.")
  flags.DEFINE_integer("num_classes", None,
                       "Number of classes (default: the dataset's).")
  flags.DEFINE_integer("ignore_label", None,
                       "Ignore label (default: the dataset's).")
  flags.DEFINE_string("dataset_dir", None, "Folder of the TFRecord shards.")
  flags.DEFINE_string("split", "train", "Split to read.")
  flags.DEFINE_string("output_json", None,
                      "Optional file for the statistics as JSON.")


def compute_stats(dataset_dir: str, split: str, num_classes: int,
                  ignore_label: int) -> Dict[str, Any]:
  """Counts the pixels of every class over a built split.

  Returns:
    A dict: `num_images`, `pixel_counts` [C], `frequency` [C] (share of
    labelled pixels), `balanced` and `median_frequency` weights [C]
    (`label_stats`' formulas, the ones training uses), `ignored_pixels`,
    and `out_of_range_pixels` / `out_of_range_values` /
    `out_of_range_images`: labels outside [0, num_classes) other than the
    ignore label (training stops on them unless --out_of_range_labels=
    ignore), left out of the counts.

  Raises:
    FileNotFoundError: naming the folder or split without shards.
  """
  stats = label_stats.split_statistics(dataset_dir, split, num_classes,
                                       ignore_label, count_out_of_range=True)
  total = max(int(stats.counts.sum()), 1)
  return {
      "num_images": stats.num_images, "pixel_counts": stats.counts,
      "frequency": stats.counts / total,
      "ignored_pixels": stats.ignored_pixels,
      "balanced": label_stats.balanced_weights(stats.counts),
      "median_frequency": label_stats.median_frequency_weights(
          stats.counts, stats.image_pixels),
      "num_classes": num_classes,
      "out_of_range_pixels": stats.out_of_range_pixels,
      "out_of_range_values": sorted(stats.out_of_range_values),
      "out_of_range_images": stats.out_of_range_images}


def format_stats(stats: Dict[str, Any],
                 class_names: Optional[Any] = None) -> str:
  """A readable table of the statistics."""
  lines = [f"images: {stats['num_images']}, ignored pixels: "
           f"{stats['ignored_pixels']}",
           f"{'id':>3} {'class':<20} {'pixels':>12} {'freq':>8} "
           f"{'balanced':>9} {'median_freq':>11}"]
  for c, count in enumerate(stats["pixel_counts"]):
    name = class_names[c] if class_names is not None else f"class_{c}"
    lines.append(f"{c:>3} {name[:20]:<20} {count:>12} "
                 f"{stats['frequency'][c]:>8.4f} {stats['balanced'][c]:>9.4f} "
                 f"{stats['median_frequency'][c]:>11.4f}")
  if stats.get("out_of_range_pixels"):
    images = stats["out_of_range_images"]
    lines.append(
        f"WARNING: labels outside [0, {stats['num_classes']}): "
        f"{stats['out_of_range_pixels']} pixels (values "
        f"{stats['out_of_range_values']}) in {len(images)} images (e.g. "
        f"{images[0]}); training and evaluation stop on them unless "
        "--out_of_range_labels=ignore.")
  lines.append("balanced weights: " + ",".join(
      f"{w:.4f}" for w in stats["balanced"]))
  lines.append("median-frequency weights: " + ",".join(
      f"{w:.4f}" for w in stats["median_frequency"]))
  return "\n".join(lines)


def main(argv):
  del argv  # Unused.
  from deeplab.core import io_utils  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import data_descriptors  # pylint: disable=g-import-not-at-top
  if not FLAGS.dataset_dir:
    raise ValueError("--dataset_dir is required.")
  if FLAGS.dataset == "custom":
    if not FLAGS.num_classes:
      raise ValueError("--dataset=custom needs --num_classes.")
    descriptor = data_descriptors.make_custom_descriptor("custom",
                                                         FLAGS.num_classes)
  else:
    descriptor = data_descriptors.get_dataset_descriptor(FLAGS.dataset)
  num_classes = FLAGS.num_classes or descriptor.num_classes
  ignore_label = (descriptor.ignore_label if FLAGS.ignore_label is None
                  else FLAGS.ignore_label)
  stats = compute_stats(FLAGS.dataset_dir, FLAGS.split, num_classes,
                        ignore_label)
  names = (descriptor.class_names if num_classes == descriptor.num_classes
           else None)
  print(format_stats(stats, names))
  if FLAGS.output_json:
    io_utils.atomic_write_json(FLAGS.output_json, {
        k: (v.tolist() if isinstance(v, np.ndarray) else v)
        for k, v in stats.items()})


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
