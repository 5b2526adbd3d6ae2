"""Evaluates DeepLab checkpoints (official research/deeplab `eval.py` flags).

Writes `metrics.json` (mIoU, FWIoU, pixel accuracy, mean pixel accuracy,
per-class IoU, number of images) and TensorBoard summaries to --eval_logdir.

Example:

  python -m deeplab.evaluate \
    --dataset=pascal_voc_seg --dataset_dir=/data/voc/tfrecord \
    --eval_split=val --eval_crop_size=513,513 \
    --checkpoint_dir=/runs/voc --eval_logdir=/runs/voc/eval
"""

import os
import time

from absl import flags
from absl import logging
import tensorflow as tf

from deeplab import common_flags
from deeplab.core import config as config_lib
from deeplab.core import experiment
from deeplab.core import io_utils
from deeplab.datasets import input_pipeline
from deeplab.datasets import tfrecord_io

FLAGS = flags.FLAGS

flags.DEFINE_string("eval_logdir", None,
                    "Where metrics.json and eval summaries are written.")
flags.DEFINE_string("checkpoint_dir", None,
                    "Folder of checkpoints (a train_logdir), or a checkpoint "
                    "prefix, to evaluate.")
flags.DEFINE_string("eval_split", "val", "Split to evaluate on.")
flags.DEFINE_integer("eval_batch_size", 1, "Batch size.")
flags.DEFINE_list("eval_crop_size", "513,513",
                  "Eval canvas 'height,width': images are padded to it, so "
                  "it must be at least the largest image.")
flags.DEFINE_integer("max_number_of_evaluations", 1,
                     "Evaluations to run; 0 keeps watching --checkpoint_dir "
                     "for new checkpoints.")
flags.DEFINE_integer("eval_interval_secs", 60,
                     "Seconds between polls for a new checkpoint.")

METRICS_FILE = "metrics.json"
REPORTED_KEYS = ("miou", "fwiou", "pixel_accuracy", "mean_pixel_accuracy",
                 "per_class_iou", "per_class_accuracy", "num_images",
                 "num_pixels", "global_step", "checkpoint_path",
                 "confusion_matrix")


def write_metrics(eval_logdir: str, results: dict, class_names) -> str:
  """Writes `metrics.json` atomically and returns its path."""
  report = {key: results[key] for key in REPORTED_KEYS if key in results}
  if len(class_names) == len(report.get("per_class_iou", ())):
    report["class_names"] = list(class_names)
  path = os.path.join(eval_logdir, METRICS_FILE)
  io_utils.atomic_write_json(path, report)
  return path


def main(argv):
  del argv
  common_flags.require_flag("checkpoint_dir")
  common_flags.require_flag("eval_logdir")
  common_flags.require_flag("dataset_dir")
  descriptor = common_flags.dataset_descriptor_from_flags()
  model_config = common_flags.model_config_from_flags(descriptor.num_classes)
  data_config = config_lib.DataConfig(
      dataset=FLAGS.dataset,
      ignore_label=descriptor.ignore_label,
      dataset_dir=FLAGS.dataset_dir,
      split=FLAGS.eval_split,
      batch_size=FLAGS.eval_batch_size,
      crop_size=common_flags.crop_size_from_flag(FLAGS.eval_crop_size,
                                                 "eval_crop_size"),
      min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      is_training=False)
  tfrecord_io.list_shards(data_config.dataset_dir, data_config.split)
  runner = experiment.make_runner(model_config, FLAGS.checkpoint_dir,
                                  descriptor.ignore_label,
                                  colormap=descriptor.colormap)
  input_fn = input_pipeline.make_input_fn(data_config)
  evaluated = set()
  while True:
    checkpoint = (tf.train.latest_checkpoint(FLAGS.checkpoint_dir)
                  if tf.io.gfile.isdir(FLAGS.checkpoint_dir)
                  else FLAGS.checkpoint_dir)
    if checkpoint is None or checkpoint in evaluated:
      if checkpoint is None and FLAGS.max_number_of_evaluations == 1:
        runner.restore_model(FLAGS.checkpoint_dir)  # Raises a clear error.
      time.sleep(FLAGS.eval_interval_secs)
      continue
    results = runner.evaluate(input_fn, checkpoint,
                              eval_dir=FLAGS.eval_logdir)
    evaluated.add(checkpoint)
    path = write_metrics(FLAGS.eval_logdir, results, descriptor.class_names)
    logging.info("mIoU %.4f on %d images (step %d); wrote %s",
                 results["miou"], results["num_images"],
                 results["global_step"], path)
    print(f"miou={results['miou']:.4f} num_images={results['num_images']} "
          f"metrics={path}")
    if 0 < FLAGS.max_number_of_evaluations <= len(evaluated):
      return


def run():
  """Console-script entry point (`deeplab-eval`)."""
  common_flags.run_app(main)


if __name__ == "__main__":
  run()
