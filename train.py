"""Trains a DeepLab model (official research/deeplab `train.py` flags).

Example:

  python -m deeplab.train \
    --dataset=pascal_voc_seg --dataset_dir=/data/voc/tfrecord \
    --train_split=train_aug --model_variant=mobilenet_v2 \
    --output_stride=16 --train_crop_size=513,513 --train_batch_size=16 \
    --training_number_of_steps=30000 --train_logdir=/runs/voc

Rerun with the same --train_logdir to resume from its latest checkpoint.
"""

import contextlib
import dataclasses
import os
import sys

from absl import flags
from absl import logging

from deeplab import common_flags
from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import model_variants
from deeplab.core.training import class_weights
from deeplab.core.training import factory
from deeplab.core.training import logdir_lock
from deeplab.core.training import preemption
from deeplab.datasets import input_pipeline
from deeplab.datasets import label_checks
from deeplab.datasets import tfrecord_io

FLAGS = flags.FLAGS

flags.DEFINE_string("train_logdir", None,
                    "Where checkpoints and summaries are written; training "
                    "resumes from the latest checkpoint here.")
flags.DEFINE_string("train_split", "train", "Split to train on.")
flags.DEFINE_integer("train_batch_size", 8, "Global batch size.",
                     lower_bound=1)
flags.DEFINE_list("train_crop_size", "513,513", "Training crop 'height,width'.")
flags.DEFINE_integer("training_number_of_steps", 30000, "Steps to train.",
                     lower_bound=0)
flags.DEFINE_enum("optimizer", "momentum", list(config_lib.OPTIMIZERS),
                  "Optimizer (official default: momentum).")
flags.DEFINE_float("adamw_weight_decay", 1e-4,
                   "Decoupled weight decay of --optimizer=adamw (kernels "
                   "only).")
flags.DEFINE_float("base_learning_rate", 0.0001,
                   "Base learning rate (official: 0.007 for VOC with "
                   "pretrained weights).")
flags.DEFINE_enum("learning_policy", "poly", list(config_lib.LEARNING_POLICIES),
                  "Learning-rate policy.")
flags.DEFINE_list("learning_rate_boundaries", [],
                  "Steps where --learning_policy=piecewise changes rate.")
flags.DEFINE_list("learning_rate_values", [],
                  "Rates of --learning_policy=piecewise (one more than the "
                  "boundaries).")
flags.DEFINE_integer("warmup_steps", 0, "Linear warmup steps (0: none).")
flags.DEFINE_float("warmup_learning_rate", 0.0,
                   "Learning rate at the start of the warmup.")
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
flags.DEFINE_boolean("sync_batch_norm", True,
                     "Synchronize BatchNorm statistics across replicas when "
                     "training on more than one.")

# Losses.
flags.DEFINE_list("label_weights", None,
                  "Per-class loss weights, one per class (official).")
flags.DEFINE_enum("class_weighting", "none", list(config_lib.CLASS_WEIGHTING_SCHEMES),
                  "Class weights computed from the training labels "
                  "(balanced, median_frequency) or adapted from running "
                  "frequencies (adaptive).")
flags.DEFINE_float("top_k_percent_pixels", 1.0,
                   "Hard-pixel mining: train on this fraction of the "
                   "hardest pixels.")
flags.DEFINE_integer("hard_example_mining_step", 0,
                     "Ramp top_k_percent_pixels in over this many steps.")
flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing.")
flags.DEFINE_float("focal_gamma", 0.0, "Focal loss gamma (0: cross-entropy).")
flags.DEFINE_float("focal_alpha", 1.0, "Focal loss alpha.")
flags.DEFINE_float("aux_loss_weight", 0.0,
                   "Weight of an auxiliary head's loss (PSPNet-style deep "
                   "supervision of the stride-16 backbone feature; Model "
                   "Garden and mmseg use 0.4). > 0 builds the model with the "
                   "head; 0: no head. Eval/export/inference drop it.",
                   lower_bound=0.0)

# Transfer learning.
flags.DEFINE_string("tf_initial_checkpoint", None,
                    "Checkpoint (prefix or folder) to start from when "
                    "--train_logdir has none.")
flags.DEFINE_boolean("initialize_last_layer", True,
                     "Also load the last layers from --tf_initial_checkpoint "
                     "(false when the number of classes changes).")
flags.DEFINE_boolean("last_layers_contain_logits_only", False,
                     "The last layers are only the logits (else also ASPP "
                     "and the decoder).")
flags.DEFINE_float("last_layer_gradient_multiplier", 1.0,
                   "Gradient multiplier of the last layers.")
flags.DEFINE_enum("freeze_level", "none", list(config_lib.FREEZE_LEVELS),
                  "Layers frozen during the transfer stage: backbone, or all "
                  "but the logits.")
flags.DEFINE_integer("transfer_steps", 0,
                     "Length of the --freeze_level stage, then everything "
                     "trains (0: the whole run).")

# Speed.
flags.DEFINE_enum("mixed_precision", "", list(config_lib.MIXED_PRECISION),
                  "Mixed precision: float16 (with loss scaling) or bfloat16.")
flags.DEFINE_boolean("jit_compile", False,
                     "Compile the training step with XLA (measure first: "
                     "slower on CPU).")
flags.DEFINE_boolean("keep_best_checkpoint", True,
                     "With --eval_online, keep the best-mIoU checkpoint in "
                     "train_logdir/best.")
flags.DEFINE_bool("upsample_logits", True,
                  "Compute the loss on logits upsampled to the labels "
                  "(official default); false downsamples the labels to the "
                  "logits' stride instead (nearest), a cheaper step.")
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
flags.DEFINE_string("profile_logdir", "",
                    "Write a TensorFlow profile of --profile_steps of the "
                    "run here (TensorBoard's Profile tab); '' is off.")
flags.DEFINE_list("profile_steps", "5,9",
                  "First and last profiled steps of the run, from 1 (the "
                  "first step traces the graph).")
flags.DEFINE_integer("eval_online", 0,
                     "Evaluate on --eval_split every this many steps while "
                     "training (0: off); summaries go to train_logdir/eval.")
flags.DEFINE_string("eval_split", "val", "Split for --eval_online.")
flags.DEFINE_list("eval_crop_size", "513,513",
                  "Eval canvas 'height,width' for --eval_online.")
flags.DEFINE_integer("eval_batch_size", 8, "Batch size for --eval_online.",
                     lower_bound=1)
flags.DEFINE_enum("distribution_strategy", "default",
                  list(config_lib.DISTRIBUTION_STRATEGIES),
                  "tf.distribute strategy (multi_worker_mirrored reads "
                  "TF_CONFIG). default with --num_gpus>1 means mirrored.")
flags.DEFINE_integer("num_gpus", 1, "GPUs for the mirrored strategy.")
flags.DEFINE_string("tpu", "", "TPU name or address for --distribution_"
                    "strategy=tpu.")
flags.DEFINE_boolean("deterministic", False,
                     "Reproducible input order and augmentation.")
flags.DEFINE_integer("seed", 0, "Seed for --deterministic.")


def _model_config(descriptor) -> config_lib.ModelConfig:
  """The model to train: a resumed run's saved model config (checked
  against the model flags given), else the model flags.

  The auxiliary head exists for its loss: only training builds it, when
  --aux_loss_weight > 0.
  """
  aux_head = FLAGS.aux_loss_weight > 0
  if checkpoints.latest_checkpoint(FLAGS.train_logdir) is None:
    config = common_flags.model_config_from_flags(descriptor.num_classes)
    return dataclasses.replace(config, aux_head=aux_head)
  config = common_flags.model_config_for_checkpoint(
      FLAGS.train_logdir, descriptor.num_classes, "train_logdir")
  saved = checkpoints.read_model_config(FLAGS.train_logdir)
  if saved is not None and saved.aux_head != aux_head:
    if not FLAGS.override_model_config:
      raise ValueError(
          f"--aux_loss_weight={FLAGS.aux_loss_weight} contradicts the model "
          f"config of --train_logdir {FLAGS.train_logdir}, which has "
          f"aux_head={saved.aux_head}. Resume with the same "
          "--aux_loss_weight, or pass --override_model_config.")
    logging.warning("OVERRIDING the model config of --train_logdir: "
                    "aux_head=%s (it was trained with %s).", aux_head,
                    saved.aux_head)
  return dataclasses.replace(config, aux_head=aux_head)


def _data_config(descriptor, model_config: config_lib.ModelConfig
                 ) -> config_lib.DataConfig:
  return common_flags.data_flags_for(config_lib.DataConfig(
      dataset=FLAGS.dataset,
      ignore_label=descriptor.ignore_label,
      dataset_dir=FLAGS.dataset_dir,
      split=FLAGS.train_split,
      batch_size=FLAGS.train_batch_size,
      crop_size=common_flags.crop_size_from_flag(FLAGS.train_crop_size,
                                                 "train_crop_size"),
      min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor,
      min_scale_factor=FLAGS.min_scale_factor,
      max_scale_factor=FLAGS.max_scale_factor,
      scale_factor_step_size=FLAGS.scale_factor_step_size,
      is_training=True,
      deterministic=FLAGS.deterministic,
      seed=FLAGS.seed,
      augment=common_flags.augment_params_from_flags(),
      # Pad with what the variant's preprocessing maps to 0 (official
      # feature_extractor.mean_pixel).
      mean_pixel=model_variants.get_model_variant(
          model_config.model_variant).mean_pixel), model_config.num_classes)


def train_config_from_flags() -> config_lib.TrainConfig:
  """The `TrainConfig` of the flags (each part checks its values)."""
  values = {name: getattr(FLAGS, name)
            for name in config_lib.TrainConfig.flat_field_names()}
  values.update(
      learning_rate_boundaries=config_lib.parse_int_list(
          FLAGS.learning_rate_boundaries, "learning_rate_boundaries"),
      learning_rate_values=_parse_floats(FLAGS.learning_rate_values,
                                         "learning_rate_values"),
      label_weights=(_parse_floats(FLAGS.label_weights, "label_weights")
                     if FLAGS.label_weights else None),
      tf_initial_checkpoint=FLAGS.tf_initial_checkpoint or "",
      profile_steps=config_lib.parse_int_list(FLAGS.profile_steps,
                                              "profile_steps"))
  return config_lib.TrainConfig.from_flat(**values)


def configs_from_flags():
  """Returns (descriptor, ModelConfig, DataConfig, TrainConfig) of the
  flags, all validated before anything is built."""
  common_flags.require_flag("train_logdir")
  common_flags.require_flag("dataset_dir")
  descriptor = common_flags.dataset_descriptor_from_flags()
  train_config = train_config_from_flags()
  model_config = _model_config(descriptor)
  return (descriptor, model_config, _data_config(descriptor, model_config),
          train_config)


def _parse_floats(values, flag_name):
  try:
    return tuple(float(v) for v in values or ())
  except ValueError:
    raise ValueError(f"--{flag_name} expects comma-separated numbers, got "
                     f"{values!r}.") from None


def _train(runner, data_config, train_config):
  """Trains (with online evaluation if asked); returns the final step."""
  train_input_fn = input_pipeline.make_input_fn(data_config)
  if not FLAGS.eval_online:
    return runner.train(train_input_fn, train_config.training_number_of_steps)
  eval_config = dataclasses.replace(
      data_config, split=FLAGS.eval_split, batch_size=FLAGS.eval_batch_size,
      crop_size=common_flags.crop_size_from_flag(FLAGS.eval_crop_size,
                                                 "eval_crop_size"),
      is_training=False)
  tfrecord_io.list_shards(eval_config.dataset_dir, eval_config.split)
  results = runner.train_and_evaluate(
      train_input_fn, input_pipeline.make_input_fn(eval_config),
      train_config.training_number_of_steps, FLAGS.eval_online,
      eval_dir=os.path.join(runner.model_dir, "eval"))
  return results["global_step"]


def _make_runner(descriptor, model_config, data_config, train_config):
  """The strategy, the class weights and the Runner of the configs."""
  distribution = train_config.distribution
  if distribution.deterministic:
    # Same seed, same op results: a resumed run repeats an uninterrupted one.
    import keras  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(distribution.seed)
    tf.config.experimental.enable_op_determinism()
  strategy = factory.make_strategy(distribution)
  if FLAGS.sync_batch_norm and strategy.num_replicas_in_sync > 1:
    model_config = dataclasses.replace(model_config, sync_batch_norm=True)
  label_weights = None
  if train_config.loss.class_weighting in ("balanced", "median_frequency"):
    label_weights = class_weights.class_weights_from_tfrecords(
        data_config.dataset_dir, data_config.split, model_config.num_classes,
        descriptor.ignore_label, train_config.loss.class_weighting)
  return factory.make_runner(
      model_config, train_config.checkpoint.train_logdir,
      descriptor.ignore_label, train_config=train_config, strategy=strategy,
      colormap=descriptor.colormap, label_weights=label_weights)


def main(argv):
  del argv
  configs = configs_from_flags()
  data_config = configs[2]
  # Fail before building anything when the data is missing or truncated.
  tfrecord_io.check_shards(
      tfrecord_io.list_shards(data_config.dataset_dir, data_config.split),
      data_config.skip_corrupt_records)
  # One trainer per logdir (only the chief writes there).
  with contextlib.ExitStack() as stack:
    if logdir_lock.is_chief_task():
      stack.enter_context(logdir_lock.LogdirLock(FLAGS.train_logdir))
    _train_locked(*configs)


def _train_locked(descriptor, model_config, data_config, train_config):
  """Builds the runner and trains (holding the logdir lock)."""
  runner = _make_runner(descriptor, model_config, data_config, train_config)
  logging.info("Training %s on %s/%s for %d steps into %s (%d replicas)",
               model_config.model_variant, data_config.dataset,
               data_config.split, train_config.training_number_of_steps,
               runner.model_dir, runner.strategy.num_replicas_in_sync)
  try:
    step = _train(runner, data_config, train_config)
  except preemption.TrainingPreempted as stopped:
    logging.warning("%s", stopped)
    sys.exit(stopped.exit_code)
  except FloatingPointError as error:
    logging.error("%s", error)
    sys.exit(f"ERROR: {error}")
  if label_checks.COUNTER.summary():
    logging.warning("%s", label_checks.COUNTER.summary())
  logging.info("Training finished at step %d; checkpoints in %s", step,
               runner.model_dir)


def run():
  """Console-script entry point (`deeplab-train`)."""
  common_flags.run_app(main, "Training", [
      ("Data", common_flags.DATA_FLAGS), ("Model", common_flags.MODEL_FLAGS),
      ("Augmentation (training)", common_flags.AUGMENTATION_FLAGS)])


if __name__ == "__main__":
  run()
