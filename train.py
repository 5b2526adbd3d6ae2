"""Trains a DeepLab model (official research/deeplab `train.py` flags).

Example:

  python -m deeplab.train \
    --dataset=pascal_voc_seg --dataset_dir=/data/voc/tfrecord \
    --train_split=train_aug --model_variant=mobilenet_v2 \
    --output_stride=16 --train_crop_size=513,513 --train_batch_size=16 \
    --training_number_of_steps=30000 --train_logdir=/runs/voc

Rerun with the same --train_logdir to resume from its latest checkpoint.
"""

import dataclasses
import os

from absl import flags
from absl import logging

from deeplab import common_flags
from deeplab.core import config as config_lib
from deeplab.core import experiment
from deeplab.datasets import input_pipeline
from deeplab.datasets import tfrecord_io

FLAGS = flags.FLAGS

flags.DEFINE_string("train_logdir", None,
                    "Where checkpoints and summaries are written; training "
                    "resumes from the latest checkpoint here.")
flags.DEFINE_string("train_split", "train", "Split to train on.")
flags.DEFINE_integer("train_batch_size", 8, "Global batch size.")
flags.DEFINE_list("train_crop_size", "513,513", "Training crop 'height,width'.")
flags.DEFINE_integer("training_number_of_steps", 30000, "Steps to train.")
flags.DEFINE_enum("optimizer", "momentum", ["momentum", "adam"], "Optimizer.")
flags.DEFINE_float("base_learning_rate", 0.0001,
                   "Base learning rate (official: 0.007 for VOC with "
                   "pretrained weights).")
flags.DEFINE_enum("learning_policy", "poly", ["poly", "step"],
                  "Learning-rate policy.")
flags.DEFINE_float("learning_power", 0.9, "Power of the poly policy.")
flags.DEFINE_integer("learning_rate_decay_step", 2000,
                     "Decay period of the step policy.")
flags.DEFINE_float("learning_rate_decay_factor", 0.1,
                   "Decay factor of the step policy.")
flags.DEFINE_float("end_learning_rate", 0.0, "Floor of the poly policy.")
flags.DEFINE_integer("slow_start_step", 0,
                     "Train with slow_start_learning_rate for this many steps.")
flags.DEFINE_float("slow_start_learning_rate", 1e-4,
                   "Learning rate during the slow start.")
flags.DEFINE_float("momentum", 0.9, "Momentum of the momentum optimizer.")
flags.DEFINE_boolean("fine_tune_batch_norm", True,
                     "Update BatchNorm (needs a batch of about 12 or more).")
flags.DEFINE_float("min_scale_factor", 0.5, "Smallest random scale.")
flags.DEFINE_float("max_scale_factor", 2.0, "Largest random scale.")
flags.DEFINE_float("scale_factor_step_size", 0.25,
                   "Random scales are drawn on this grid (0: continuous).")
flags.DEFINE_integer("save_interval_steps", 500,
                     "Save a checkpoint every this many steps.")
flags.DEFINE_integer("save_interval_secs", 600,
                     "Save a checkpoint at least this often.")
flags.DEFINE_integer("max_to_keep", 5, "Checkpoints to keep.")
flags.DEFINE_integer("log_steps", 50, "Log and summarise every this many steps.")
flags.DEFINE_integer("image_summary_steps", 500,
                     "Image summaries every this many steps (0: off).")
flags.DEFINE_integer("eval_online", 0,
                     "Evaluate on --eval_split every this many steps while "
                     "training (0: off); summaries go to train_logdir/eval.")
flags.DEFINE_string("eval_split", "val", "Split for --eval_online.")
flags.DEFINE_list("eval_crop_size", "513,513",
                  "Eval canvas 'height,width' for --eval_online.")
flags.DEFINE_integer("eval_batch_size", 8, "Batch size for --eval_online.")
flags.DEFINE_enum("distribution_strategy", "default",
                  ["default", "one_device", "mirrored",
                   "multi_worker_mirrored"], "tf.distribute strategy.")
flags.DEFINE_integer("num_gpus", 1, "GPUs for the mirrored strategy.")
flags.DEFINE_boolean("deterministic", False,
                     "Reproducible input order and augmentation.")
flags.DEFINE_integer("seed", 0, "Seed for --deterministic.")


def configs_from_flags():
  """Returns (ModelConfig, DataConfig, TrainConfig) from the flags."""
  common_flags.require_flag("train_logdir")
  common_flags.require_flag("dataset_dir")
  descriptor = common_flags.dataset_descriptor_from_flags()
  model_config = common_flags.model_config_from_flags(descriptor.num_classes)
  data_config = config_lib.DataConfig(
      dataset=FLAGS.dataset,
      ignore_label=descriptor.ignore_label,
      dataset_dir=FLAGS.dataset_dir,
      split=FLAGS.train_split,
      batch_size=FLAGS.train_batch_size,
      crop_size=common_flags.crop_size_from_flag(FLAGS.train_crop_size,
                                                 "train_crop_size"),
      min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      min_scale_factor=FLAGS.min_scale_factor,
      max_scale_factor=FLAGS.max_scale_factor,
      scale_factor_step_size=FLAGS.scale_factor_step_size,
      is_training=True,
      deterministic=FLAGS.deterministic,
      seed=FLAGS.seed)
  train_config = config_lib.TrainConfig(
      train_logdir=FLAGS.train_logdir,
      training_number_of_steps=FLAGS.training_number_of_steps,
      optimizer=FLAGS.optimizer,
      base_learning_rate=FLAGS.base_learning_rate,
      learning_policy=FLAGS.learning_policy,
      learning_power=FLAGS.learning_power,
      learning_rate_decay_step=FLAGS.learning_rate_decay_step,
      learning_rate_decay_factor=FLAGS.learning_rate_decay_factor,
      end_learning_rate=FLAGS.end_learning_rate,
      slow_start_step=FLAGS.slow_start_step,
      slow_start_learning_rate=FLAGS.slow_start_learning_rate,
      momentum=FLAGS.momentum,
      fine_tune_batch_norm=FLAGS.fine_tune_batch_norm,
      save_interval_steps=FLAGS.save_interval_steps,
      save_interval_secs=FLAGS.save_interval_secs,
      max_to_keep=FLAGS.max_to_keep,
      log_steps=FLAGS.log_steps,
      image_summary_steps=FLAGS.image_summary_steps)
  return descriptor, model_config, data_config, train_config


def main(argv):
  del argv
  descriptor, model_config, data_config, train_config = configs_from_flags()
  # Fail before building anything when the data is missing.
  tfrecord_io.list_shards(data_config.dataset_dir, data_config.split)
  strategy = experiment.make_strategy(FLAGS.distribution_strategy,
                                      FLAGS.num_gpus)
  runner = experiment.make_runner(
      model_config, train_config.train_logdir, descriptor.ignore_label,
      train_config=train_config, strategy=strategy,
      colormap=descriptor.colormap)
  logging.info("Training %s on %s/%s for %d steps into %s",
               model_config.model_variant, data_config.dataset,
               data_config.split, train_config.training_number_of_steps,
               train_config.train_logdir)
  train_input_fn = input_pipeline.make_input_fn(data_config)
  if FLAGS.eval_online:
    eval_config = dataclasses.replace(
        data_config, split=FLAGS.eval_split, batch_size=FLAGS.eval_batch_size,
        crop_size=common_flags.crop_size_from_flag(FLAGS.eval_crop_size,
                                                   "eval_crop_size"),
        is_training=False)
    tfrecord_io.list_shards(eval_config.dataset_dir, eval_config.split)
    results = runner.train_and_evaluate(
        train_input_fn, input_pipeline.make_input_fn(eval_config),
        train_config.training_number_of_steps, FLAGS.eval_online,
        eval_dir=os.path.join(train_config.train_logdir, "eval"))
    step = results["global_step"]
  else:
    step = runner.train(train_input_fn, train_config.training_number_of_steps)
  logging.info("Training finished at step %d; checkpoints in %s", step,
               train_config.train_logdir)


def run():
  """Console-script entry point (`deeplab-train`)."""
  common_flags.run_app(main)


if __name__ == "__main__":
  run()
