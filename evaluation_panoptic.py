"""Evaluates panoptic predictions in COCO panoptic format: PQ or parsing covering.

The counterpart of official `research/deeplab/evaluation/eval_coco_format.py`,
with its flag names and defaults (COCO panoptic: 201 categories, void 0):

  python -m deeplab.evaluation_panoptic \\
    --gt_json_file=panoptic_val2017.json --gt_folder=panoptic_val2017 \\
    --pred_json_file=pred.json --pred_folder=pred --metric=pq

Prints a table of the metric over all, "thing" and "stuff" categories (in
percent) and, with --output_json, writes those figures and each category's
as JSON ({"All": {...}, "Things": ..., "Stuff": ..., "per_category":
{id: {...}}}).
The library is `deeplab.core.evaluation.coco_panoptic`.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from deeplab.core import io_utils
from deeplab.core.evaluation import coco_panoptic

FLAGS = flags.FLAGS

flags.DEFINE_string("gt_json_file", None,
                    "JSON file of ground-truth annotations in COCO panoptic "
                    "format.")
flags.DEFINE_string("pred_json_file", None,
                    "JSON file of the predictions to evaluate.")
flags.DEFINE_string("gt_folder", None,
                    "Folder of ground-truth panoptic ID PNGs (default: "
                    "--gt_json_file without '.json').")
flags.DEFINE_string("pred_folder", None,
                    "Folder of predicted panoptic ID PNGs (default: "
                    "--pred_json_file without '.json').")
flags.DEFINE_enum("metric", "pq", list(coco_panoptic.METRICS),
                  "Panoptic Quality (pq) or Parsing Covering (pc).")
flags.DEFINE_integer("num_categories", 201,
                     "Number of categories in the dataset.")
flags.DEFINE_integer("ignored_label", 0,
                     "Category id ignored in evaluation (COCO panoptic void).")
flags.DEFINE_integer("max_instances_per_category", 256,
                     "Instance ids per category stay below this.")
flags.DEFINE_integer("intersection_offset", None,
                     "Segment-pair encoding offset (default: (num_categories "
                     "+ 1) * max_instances_per_category).")
flags.DEFINE_boolean("normalize_by_image_size", True,
                     "Parsing covering only: divide each image's areas by its "
                     "size before summing over the dataset.")
flags.DEFINE_integer("num_workers", 0,
                     "Processes to split the images over; 0: this process, "
                     "-1: one per CPU.")
flags.DEFINE_integer("print_digits", 3,
                     "Digits kept (of the fraction) when printing metrics.")
flags.DEFINE_string("output_json", None,
                    "Also write the results here as JSON (not official).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  for name in ("gt_json_file", "pred_json_file"):
    if not FLAGS[name].value:
      raise ValueError(f"--{name} is required.")
  config = coco_panoptic.PanopticEvalConfig(
      metric=FLAGS.metric, num_categories=FLAGS.num_categories,
      ignored_label=FLAGS.ignored_label,
      max_instances_per_category=FLAGS.max_instances_per_category,
      intersection_offset=FLAGS.intersection_offset,
      normalize_by_image_size=FLAGS.normalize_by_image_size,
      num_workers=FLAGS.num_workers)
  evaluation = coco_panoptic.evaluate_coco_panoptic(
      FLAGS.gt_json_file, FLAGS.pred_json_file, FLAGS.gt_folder,
      FLAGS.pred_folder, config)
  print(evaluation.table(FLAGS.print_digits))
  if FLAGS.output_json:
    io_utils.atomic_write_json(FLAGS.output_json, dict(
        evaluation.results,
        per_category=evaluation.metric.per_category_results()))
    logging.info("Wrote %s", FLAGS.output_json)


def _checked_main(argv):
  try:
    return main(argv)
  except (ValueError, FileNotFoundError, KeyError) as error:
    logging.error("%s", error)
    sys.exit(f"ERROR: {error}")


def run():
  """Console-script entry point."""
  app.run(_checked_main)


if __name__ == "__main__":
  run()
