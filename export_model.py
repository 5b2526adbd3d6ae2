"""Exports a trained DeepLab checkpoint for serving (official flag names).

Writes a SavedModel in TF Serving's versioned layout, `export_path/<version>/`.
Its `serving_default` signature takes a uint8 image batch `ImageTensor`
[B, H, W, 3] of any size and returns `semantic_predictions` (int32 labels at
the input size) and `probabilities`.

Example:

  python -m deeplab.export_model \
    --checkpoint_path=/runs/voc --export_path=/models/deeplab \
    --model_variant=mobilenet_v2 --num_classes=21
"""

from absl import flags
from absl import logging

from deeplab import common_flags
from deeplab.core import experiment

FLAGS = flags.FLAGS

flags.DEFINE_string("checkpoint_path", None,
                    "Checkpoint prefix, or a train_logdir (its latest "
                    "checkpoint is used).")
flags.DEFINE_string("export_path", None,
                    "Model base folder; the version is written below it.")
flags.DEFINE_integer("export_version", None,
                     "Version folder to write; the next free integer when "
                     "unset. An existing version is never overwritten.")
flags.DEFINE_list("crop_size", None,
                  "Accepted for compatibility with official export_model.py; "
                  "the export takes any input size.")
flags.DEFINE_multi_float("inference_scales", [1.0],
                         "Scales for multi-scale inference.")
flags.DEFINE_boolean("add_flipped_images", False,
                     "Also run on left-right flipped images.")


def main(argv):
  del argv
  common_flags.require_flag("checkpoint_path")
  common_flags.require_flag("export_path")
  if list(FLAGS.inference_scales) != [1.0] or FLAGS.add_flipped_images:
    raise ValueError(
        "--inference_scales other than [1.0] and --add_flipped_images are "
        "not supported by this version of export_model.py.")
  descriptor = common_flags.dataset_descriptor_from_flags()
  model_config = common_flags.model_config_from_flags(descriptor.num_classes)
  runner = experiment.make_runner(model_config, FLAGS.checkpoint_path,
                                  descriptor.ignore_label)
  path = runner.export(FLAGS.export_path, checkpoint_path=FLAGS.checkpoint_path,
                       version=FLAGS.export_version)
  logging.info("Exported %s", path)
  print(f"Exported SavedModel to {path}")


def run():
  """Console-script entry point (`deeplab-export`)."""
  common_flags.run_app(main)


if __name__ == "__main__":
  run()
