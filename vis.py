"""Visualises a model's predictions on a split (official `research/deeplab/vis.py`).

For every image of --vis_split it writes, under --vis_logdir:

  segmentation_results/000000_image.png        the image
  segmentation_results/000000_prediction.png   the coloured prediction
  raw_segmentation_results/<name>.png          class ids, with
                                               --also_save_raw_predictions
                                               (Cityscapes: labelIds)

It visualises the newest checkpoint of --checkpoint_dir and then, like the
official app, waits for each new one (polling every --eval_interval_secs)
until --max_number_of_iterations checkpoints are done (0: forever). A
checkpoint prefix or model-zoo tarball is visualised once. The network is
the one saved beside the checkpoint (`model_config.json`); model flags are
needed only for checkpoints saved without one. The library is
`deeplab.core.evaluation.vis_writer`.

Example:

  python -m deeplab.vis --dataset=cityscapes \\
    --dataset_dir=/data/cityscapes/tfrecord --vis_split=val \\
    --checkpoint_dir=/runs/cityscapes --vis_logdir=/runs/cityscapes/vis \\
    --vis_crop_size=1025,2049 --colormap_type=cityscapes \\
    --also_save_raw_predictions --max_number_of_iterations=1
"""

from absl import flags
from absl import logging
import tensorflow as tf

from deeplab import common_flags
from deeplab.core import checkpoints
from deeplab.core.evaluation import eval_loop
from deeplab.core.evaluation import vis_writer
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import model_variants
from deeplab.datasets import colormaps
from deeplab.datasets import tfrecord_io

FLAGS = flags.FLAGS

flags.DEFINE_string("vis_logdir", None,
                    "Where segmentation_results/ and raw_segmentation_results/ "
                    "are written.")
flags.DEFINE_string("vis_split", "val", "Split to visualise.")
flags.DEFINE_integer("vis_batch_size", 1,
                     "Images per forward pass (with a --vis_crop_size).")
flags.DEFINE_list("vis_crop_size", "513,513",
                  "Canvas 'height,width' images are padded to (every image "
                  "must fit). Empty (--vis_crop_size=) runs each image at "
                  "its own size.")
flags.DEFINE_enum("colormap_type", None, sorted(colormaps.COLORMAP_NAMES),
                  "Colormap of the coloured predictions (official default "
                  "pascal); default: the dataset's.")
flags.DEFINE_boolean("also_save_raw_predictions", False,
                     "Also write the raw class ids as grayscale PNGs "
                     "(Cityscapes: trainIds converted to labelIds).")
flags.DEFINE_integer("max_number_of_iterations", 0,
                     "Checkpoints to visualise; 0 keeps watching "
                     "--checkpoint_dir for new ones.")
# Shared with evaluate.py / export_model.py, which a process may also load.
if "checkpoint_dir" not in FLAGS:
  flags.DEFINE_string("checkpoint_dir", None,
                      "Folder of checkpoints (a train_logdir), or a "
                      "checkpoint prefix.")
if "eval_interval_secs" not in FLAGS:
  flags.DEFINE_integer("eval_interval_secs", 300,
                       "Seconds between polls for a new checkpoint.")
if "eval_scales" not in FLAGS:
  flags.DEFINE_multi_float("eval_scales", [1.0],
                           "Input scales whose softmax is averaged.")
if "add_flipped_images" not in FLAGS:
  flags.DEFINE_boolean("add_flipped_images", False,
                       "Also average left-right flipped inputs.")


def _checkpoints():
  """Yields the checkpoints to visualise, waiting for new ones."""
  path = FLAGS.checkpoint_dir
  if not tf.io.gfile.isdir(path) or FLAGS.max_number_of_iterations == 1:
    # A prefix or tarball, or one pass: the latest, or one clear error.
    yield checkpoints.resolve_checkpoint(path, "checkpoint_dir")
    return
  count = 0
  for checkpoint in tf.train.checkpoints_iterator(
      path, min_interval_secs=FLAGS.eval_interval_secs):
    yield checkpoint
    count += 1
    if 0 < FLAGS.max_number_of_iterations <= count:
      return


def _vis_config(descriptor, model_config) -> vis_writer.VisConfig:
  """The `VisConfig` of the flags."""
  crop = (common_flags.crop_size_from_flag(FLAGS.vis_crop_size,
                                           "vis_crop_size")
          if FLAGS.vis_crop_size else None)
  if FLAGS.vis_batch_size < 1:
    raise ValueError(f"--vis_batch_size must be positive, got "
                     f"{FLAGS.vis_batch_size}.")
  return vis_writer.VisConfig(
      vis_dir=FLAGS.vis_logdir,
      colormap_type=FLAGS.colormap_type or descriptor.colormap_name,
      also_save_raw_predictions=FLAGS.also_save_raw_predictions,
      label_id_table=vis_writer.raw_label_table(descriptor.name),
      crop_size=crop, batch_size=FLAGS.vis_batch_size,
      min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor,
      eval_scales=FLAGS.eval_scales,
      add_flipped_images=FLAGS.add_flipped_images,
      mean_pixel=model_variants.get_model_variant(
          model_config.model_variant).mean_pixel)


def main(argv):
  del argv
  for name in ("checkpoint_dir", "vis_logdir", "dataset_dir"):
    common_flags.require_flag(name)
  descriptor = common_flags.dataset_descriptor_from_flags()
  tfrecord_io.list_shards(FLAGS.dataset_dir, FLAGS.vis_split)  # Fail early.
  # The model saved beside the checkpoint (model_config.json), checked
  # against explicit model flags; the flags alone for older checkpoints.
  model_config = checkpoints.inference_model_config(
      common_flags.model_config_for_checkpoint(
          FLAGS.checkpoint_dir, descriptor.num_classes, "checkpoint_dir"))
  config = _vis_config(descriptor, model_config)
  model = deeplab_model.build_deeplab_model(model_config)
  predict = vis_writer.make_batch_predictor(model, config)
  for checkpoint in _checkpoints():
    logging.info("Visualizing with model %s", checkpoint)
    checkpoints.restore_model(model, checkpoint, "checkpoint_dir")
    count = vis_writer.visualize_split(
        predict, eval_loop.iter_examples(FLAGS.dataset_dir, FLAGS.vis_split),
        config, num_images=descriptor.splits_to_sizes.get(FLAGS.vis_split))
    print(f"visualized {count} images of {checkpoint} in {FLAGS.vis_logdir}")


def run():
  """Console-script entry point (`deeplab-vis`)."""
  common_flags.run_app(main)


if __name__ == "__main__":
  run()
