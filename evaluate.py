"""Evaluates DeepLab models: checkpoints and every export format.

Reports mIoU, FWIoU, pixel accuracy, mean pixel accuracy and per-class IoU,
all from one confusion matrix accumulated on device. Writes to
--eval_logdir: `metrics.json`, `confusion_matrix.png` and
`per_class_iou.png` (not with `--noeval_plots`), and TensorBoard summaries
for checkpoints.

* `--checkpoint_dir` alone: batched evaluation of checkpoints (official
  `eval.py`), optionally watching for new ones. The network is built from
  the `model_config.json` saved beside them (no model flag needed; a
  contradicting one is an error unless --override_model_config), or from
  the model flags for checkpoints saved without one.
* `--model_path` (repeatable): exported models (SavedModel folder, frozen
  graph `.pb`, `.tflite`, `.onnx`, `.mnn`), each run on every image at full size;
  with several models (and a checkpoint), their figures are reported side
  by side in `metrics.json["formats"]` and on stdout.
* `--eval_scales` / `--add_flipped_images`: multi-scale and flip inference
  of checkpoints (exported models carry their own `--inference_scales`).
* `--eval_crop_size=` (empty): full-image evaluation with no crop limit,
  e.g. Cityscapes 1024x2048.
* `--save_predictions`: palette PNGs and overlays under
  `eval_logdir/predictions/`; `--cityscapes_results_dir`: Cityscapes
  labelId PNGs for cityscapesscripts' official evaluator.
* `--predictions_dir`: no model; scores prediction PNGs made elsewhere
  against `--ground_truth_dir` (PNGs) or the `--eval_split` TFRecords of
  `--dataset_dir` (`core/evaluation/score_folder.py`): Cityscapes labelId
  PNGs as cityscapesscripts reads them for `--dataset=cityscapes`, index
  PNGs of the same names otherwise.

Example:

  python -m deeplab.evaluate \
    --dataset=pascal_voc_seg --dataset_dir=/data/voc/tfrecord \
    --eval_split=val --eval_crop_size=513,513 \
    --checkpoint_dir=/runs/voc --eval_logdir=/runs/voc/eval \
    --eval_scales=0.5 --eval_scales=0.75 --eval_scales=1.0 \
    --eval_scales=1.25 --eval_scales=1.5 --eval_scales=1.75 \
    --add_flipped_images
"""

import os
import time

from absl import flags
from absl import logging

from deeplab import common_flags
from deeplab.core import config as config_lib
from deeplab.core import io_utils
from deeplab.core.evaluation import score_folder

# The modules of the model paths (TensorFlow, Keras) are imported by the
# functions that run a model, so that `--predictions_dir`, which scores PNGs
# with NumPy, starts without importing TensorFlow (about 1 s instead of 7
# on a 2-core machine; docs/benchmarks.md, metric speed). Matplotlib (about
# 0.6 s to import) is imported only when the plots are drawn.
# pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

flags.DEFINE_string("eval_logdir", None,
                    "Where metrics.json and eval summaries are written.")
flags.DEFINE_string("checkpoint_dir", None,
                    "Folder of checkpoints (a train_logdir), or a checkpoint "
                    "prefix, to evaluate.")
flags.DEFINE_string("eval_split", "val", "Split to evaluate on.")
flags.DEFINE_integer("eval_batch_size", 1, "Batch size.", lower_bound=1)
flags.DEFINE_list("eval_crop_size", "513,513",
                  "Eval canvas 'height,width': images are padded to it, so "
                  "it must be at least the largest image. Empty "
                  "(--eval_crop_size=) evaluates every image at its full "
                  "size, batch size 1, with no crop limit.")
flags.DEFINE_integer("max_number_of_evaluations", 1,
                     "Evaluations to run; 0 keeps watching --checkpoint_dir "
                     "for new checkpoints.")
flags.DEFINE_integer("eval_interval_secs", 60,
                     "Seconds between polls for a new checkpoint.")
flags.DEFINE_multi_float("eval_scales", [1.0],
                         "Input scales whose softmax is averaged; repeat "
                         "the flag for multi-scale evaluation.")
if "add_flipped_images" not in FLAGS:  # Also defined by export_model.py.
  flags.DEFINE_boolean("add_flipped_images", False,
                       "Also average left-right flipped inputs.")
flags.DEFINE_multi_string("model_path", None,
                          "Exported model to evaluate: SavedModel folder, "
                          "frozen graph .pb, .tflite or .onnx; repeatable.")
flags.DEFINE_boolean("save_predictions", False,
                     "Write palette PNG predictions and overlays under "
                     "eval_logdir/predictions/.")
flags.DEFINE_string("cityscapes_results_dir", None,
                    "Write predictions as Cityscapes labelId PNGs here, for "
                    "cityscapesscripts' evaluator.")
flags.DEFINE_integer("num_eval_images", 0,
                     "Evaluate only the first N images (0: all).")
flags.DEFINE_string("predictions_dir", None,
                    "Score the prediction PNGs in this folder, made "
                    "elsewhere (no model): Cityscapes labelId PNGs named "
                    "<city>_<seq>_<frame>*.png for --dataset=cityscapes, "
                    "else index PNGs named like their ground truth.")
flags.DEFINE_string("ground_truth_dir", None,
                    "With --predictions_dir: folder of ground-truth PNGs "
                    "(Cityscapes: *_gtFine_labelIds.png, searched "
                    "recursively). Default: the --eval_split TFRecords of "
                    "--dataset_dir.")
flags.DEFINE_boolean("predictions_are_train_ids", False,
                     "With --predictions_dir and --dataset=cityscapes: the "
                     "PNGs hold trainIds (as --save_predictions writes "
                     "them), not cityscapesscripts' labelIds.")
flags.DEFINE_boolean("eval_plots", True,
                     "Draw confusion_matrix.png and per_class_iou.png beside "
                     "metrics.json (matplotlib).")
flags.DEFINE_integer("eval_threads", 0,
                     "With --predictions_dir: PNG decode threads (0: one "
                     "per CPU).")

METRICS_FILE = "metrics.json"
REPORTED_KEYS = ("miou", "fwiou", "pixel_accuracy", "mean_pixel_accuracy",
                 "per_class_iou", "per_class_accuracy", "num_images",
                 "num_pixels", "global_step", "checkpoint_path",
                 "confusion_matrix", "unscored_predictions",
                 "predictions_dir", "ground_truth")


SUMMARY_KEYS = ("miou", "fwiou", "pixel_accuracy", "mean_pixel_accuracy",
                "per_class_iou", "num_images")


def write_metrics(eval_logdir: str, results: dict, class_names,
                  formats=None, plots: bool = True) -> str:
  """Writes `metrics.json` and the two plots; returns the json's path.

  Args:
    eval_logdir: Output folder.
    results: Metrics of the main model.
    class_names: Class names (for the json and the plots).
    formats: Optional {name: results} of every model evaluated, reported
      side by side under `formats`.
    plots: Whether to draw the confusion matrix and per-class IoU plots.
  """
  report = {key: results[key] for key in REPORTED_KEYS if key in results}
  if len(class_names) == len(report.get("per_class_iou", ())):
    report["class_names"] = list(class_names)
  if formats:
    report["formats"] = {
        name: {key: values[key] for key in SUMMARY_KEYS}
        for name, values in formats.items()}
  path = os.path.join(eval_logdir, METRICS_FILE)
  io_utils.atomic_write_json(path, report)
  if not plots:
    return path
  from deeplab.core.evaluation import visualization
  visualization.plot_confusion_matrix(
      results["confusion_matrix"],
      os.path.join(eval_logdir, "confusion_matrix.png"), class_names)
  visualization.plot_per_class_iou(
      results["per_class_iou"], os.path.join(eval_logdir, "per_class_iou.png"),
      class_names, miou=results["miou"])
  return path


def format_table(formats) -> str:
  """The figures of several models as a plain-text table."""
  lines = [f"{'model':<20} {'mIoU':>8} {'FWIoU':>8} {'pixel acc':>10} "
           f"{'mean acc':>9} {'images':>7}"]
  for name, r in formats.items():
    lines.append(f"{name:<20} {r['miou']:8.4f} {r['fwiou']:8.4f} "
                 f"{r['pixel_accuracy']:10.4f} {r['mean_pixel_accuracy']:9.4f} "
                 f"{r['num_images']:7d}")
  return "\n".join(lines)


def _unique_name(name: str, taken) -> str:
  candidate, index = name, 2
  while candidate in taken:
    candidate, index = f"{name}_{index}", index + 1
  return candidate


def build_checkpoint_model(descriptor):
  """Builds the model of --checkpoint_dir: its model_config.json (checked
  against the model flags given), or the model flags for checkpoints saved
  without one. Evaluation scores the main logits: no auxiliary head.

  Returns:
    (model, model_config); the weights are restored by the caller.
  """
  from deeplab.core import checkpoints
  from deeplab.core.modeling import deeplab_model
  model_config = common_flags.model_config_for_checkpoint(
      FLAGS.checkpoint_dir, descriptor.num_classes, "checkpoint_dir")
  model_config = checkpoints.inference_model_config(model_config)
  return deeplab_model.build_deeplab_model(model_config), model_config


def evaluate_per_image(descriptor, scales):
  """Runs the checkpoint (if any) and every --model_path image by image.

  Returns:
    {name: results}, the checkpoint first.
  """
  from deeplab.core import checkpoints
  from deeplab.core.evaluation import eval_loop
  from deeplab.core.export import predictors
  sources = []
  num_classes = descriptor.num_classes
  if FLAGS.checkpoint_dir:
    model, model_config = build_checkpoint_model(descriptor)
    checkpoint = checkpoints.restore_model(model, FLAGS.checkpoint_dir,
                                           "checkpoint_dir")
    num_classes = model_config.num_classes
    sources.append((predictors.KerasPredictor(
        model, scales, FLAGS.add_flipped_images), checkpoint))
  elif FLAGS.num_classes:
    num_classes = FLAGS.num_classes
  for path in FLAGS.model_path or ():
    sources.append((predictors.load_predictor(path), path))
  formats = {}
  for predictor, source in sources:
    name = _unique_name(predictor.name, formats)
    first = not formats
    vis_dir = None
    if FLAGS.save_predictions:
      vis_dir = os.path.join(FLAGS.eval_logdir, "predictions",
                             *(() if len(sources) == 1 else (name,)))
    results = eval_loop.evaluate_predictor(
        predictor,
        eval_loop.iter_examples(
            FLAGS.dataset_dir, FLAGS.eval_split,
            FLAGS.num_eval_images or None,
            data_config=common_flags.data_flags_for(config_lib.DataConfig(
                dataset=FLAGS.dataset, ignore_label=descriptor.ignore_label,
                dataset_dir=FLAGS.dataset_dir, split=FLAGS.eval_split),
                                                    num_classes)),
        num_classes=num_classes,
        ignore_label=descriptor.ignore_label,
        vis_dir=vis_dir, colormap=descriptor.colormap,
        cityscapes_results_dir=FLAGS.cityscapes_results_dir if first else None,
        num_images=FLAGS.num_eval_images or None)
    results["checkpoint_path" if predictor.name == "keras" else
            "model_path"] = source
    formats[name] = results
  return formats


def score_predictions_dir():
  """--predictions_dir: scores prediction PNGs made elsewhere, no model."""
  if FLAGS.checkpoint_dir or FLAGS.model_path:
    raise flags.ValidationError(
        "--predictions_dir scores PNGs without a model; drop "
        "--checkpoint_dir/--model_path.")
  if not FLAGS.ground_truth_dir and not FLAGS.dataset_dir:
    raise flags.ValidationError(
        "--predictions_dir needs the ground truth: --ground_truth_dir "
        "(PNGs) or --dataset_dir (TFRecords of --eval_split).")
  common_flags.require_flag("eval_logdir")
  descriptor = common_flags.dataset_descriptor_from_flags()
  results = score_folder.score_predictions(
      FLAGS.predictions_dir, descriptor,
      ground_truth_dir=FLAGS.ground_truth_dir,
      dataset_dir=FLAGS.dataset_dir, split=FLAGS.eval_split,
      num_threads=FLAGS.eval_threads,
      predictions_are_train_ids=FLAGS.predictions_are_train_ids)
  path = write_metrics(FLAGS.eval_logdir, results, descriptor.class_names,
                       plots=FLAGS.eval_plots)
  print(f"miou={results['miou']:.4f} num_images={results['num_images']} "
        f"metrics={path}")


def _eval_input_fn(descriptor):
  """The batched eval input of the flags (full images without a crop)."""
  from deeplab.core.evaluation import eval_loop
  from deeplab.core.modeling import model_variants
  from deeplab.datasets import input_pipeline
  full_image = not FLAGS.eval_crop_size
  model_config = common_flags.model_config_for_checkpoint(
      FLAGS.checkpoint_dir, descriptor.num_classes, "checkpoint_dir")
  data_config = config_lib.DataConfig(
      dataset=FLAGS.dataset,
      ignore_label=descriptor.ignore_label,
      dataset_dir=FLAGS.dataset_dir,
      split=FLAGS.eval_split,
      batch_size=1 if full_image else FLAGS.eval_batch_size,
      crop_size=(0, 0) if full_image else common_flags.crop_size_from_flag(
          FLAGS.eval_crop_size, "eval_crop_size"),
      min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor,
      is_training=False,
      # Pad with what the variant's preprocessing maps to 0 (official
      # feature_extractor.mean_pixel).
      mean_pixel=model_variants.get_model_variant(
          model_config.model_variant).mean_pixel)
  # Labels are checked against the checkpoint's class count.
  data_config = common_flags.data_flags_for(data_config,
                                            model_config.num_classes)
  return (eval_loop.full_image_input_fn(data_config) if full_image
          else input_pipeline.make_input_fn(data_config))


def _next_checkpoint(evaluated):
  """The checkpoint to evaluate next, or None while there is no new one.

  Raises:
    FileNotFoundError: naming --checkpoint_dir, when it holds no checkpoint
      and only one evaluation is asked for.
  """
  from deeplab.core import checkpoints
  try:
    checkpoint = checkpoints.resolve_checkpoint(FLAGS.checkpoint_dir,
                                                "checkpoint_dir")
  except FileNotFoundError:
    if FLAGS.max_number_of_evaluations == 1:
      raise
    return None
  return None if checkpoint in evaluated else checkpoint


def evaluate_checkpoints(descriptor, scales):
  """Batched evaluation of --checkpoint_dir (official eval.py), watching
  for new checkpoints unless --max_number_of_evaluations=1."""
  from deeplab.core import checkpoints
  from deeplab.core.evaluation import model_eval
  input_fn = _eval_input_fn(descriptor)
  evaluated, evaluator = set(), None
  while True:
    checkpoint = _next_checkpoint(evaluated)
    if checkpoint is None:
      time.sleep(FLAGS.eval_interval_secs)
      continue
    if evaluator is None:
      model, model_config = build_checkpoint_model(descriptor)
      evaluator = model_eval.ModelEvaluator(
          model, model_config.num_classes, descriptor.ignore_label,
          colormap=descriptor.colormap)
    checkpoint = checkpoints.restore_model(evaluator.model, checkpoint,
                                           "checkpoint_dir")
    results = evaluator.evaluate(input_fn, scales, FLAGS.add_flipped_images)
    step = checkpoints.step_of_checkpoint(checkpoint)
    results.update(global_step=step, checkpoint_path=checkpoint)
    evaluator.write_summaries(FLAGS.eval_logdir, results, step)
    evaluated.add(checkpoint)
    path = write_metrics(FLAGS.eval_logdir, results, descriptor.class_names,
                         plots=FLAGS.eval_plots)
    logging.info("mIoU %.4f on %d images (step %d); wrote %s",
                 results["miou"], results["num_images"], step, path)
    print(f"miou={results['miou']:.4f} num_images={results['num_images']} "
          f"metrics={path}")
    if 0 < FLAGS.max_number_of_evaluations <= len(evaluated):
      return


def main(argv):
  del argv
  if FLAGS.predictions_dir:
    score_predictions_dir()
    return
  from deeplab.core.modeling import multiscale
  from deeplab.datasets import tfrecord_io
  if not FLAGS.checkpoint_dir and not FLAGS.model_path:
    raise flags.ValidationError(
        "Pass --checkpoint_dir and/or --model_path (the model to evaluate).")
  common_flags.require_flag("eval_logdir")
  common_flags.require_flag("dataset_dir")
  scales = multiscale.validate_scales(FLAGS.eval_scales, "eval_scales")
  if FLAGS.model_path and not multiscale.is_single_pass(
      scales, FLAGS.add_flipped_images):
    logging.warning("--eval_scales/--add_flipped_images apply to "
                    "--checkpoint_dir only; exported models use the "
                    "--inference_scales they were exported with.")
  if FLAGS.model_path:
    common_flags.warn_prediction_flags_for_exports()
  descriptor = common_flags.dataset_descriptor_from_flags()
  tfrecord_io.check_shards(
      tfrecord_io.list_shards(FLAGS.dataset_dir, FLAGS.eval_split),
      FLAGS.skip_corrupt_records)
  if not (FLAGS.model_path or FLAGS.save_predictions or
          FLAGS.cityscapes_results_dir or FLAGS.num_eval_images):
    evaluate_checkpoints(descriptor, scales)
    return
  formats = evaluate_per_image(descriptor, scales)
  primary = next(iter(formats.values()))
  path = write_metrics(FLAGS.eval_logdir, primary, descriptor.class_names,
                       formats if len(formats) > 1 else None,
                       plots=FLAGS.eval_plots)
  print(format_table(formats))
  print(f"metrics={path}")


def run():
  """Console-script entry point (`deeplab-eval`)."""
  common_flags.run_app(main, "Evaluation", [
      ("Data", common_flags.DATA_FLAGS), ("Model", common_flags.MODEL_FLAGS)])


if __name__ == "__main__":
  run()
