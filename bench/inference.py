"""CPU inference latency of every export format, and metric speed.

Part 1: for mobilenet_v2 (OS16, ASPP lite, no decoder: the zoo's 2.75B
multiply-adds model) and xception_65 (OS16, ASPP [6, 12, 18], decoder at
OS4: 54.17B), 21 classes, random weights (speed does not depend on them),
measures single-image latency (p50, p90) and throughput at 513x513 for:

* `saved_model`: the exported SavedModel's `serving_default` (uint8 in,
  labels and probabilities out), loaded with `tf.saved_model.load`;
* `tflite_fp32`, `tflite_int8`: the TFLite exports run by the LiteRT
  interpreter (`ai_edge_litert`) with as many threads as cores;
* `onnxruntime`: the ONNX export on onnxruntime's CPU provider.

Every format runs the same graph: pre-processing, network, softmax, argmax.

Part 2: scores the same 50 Cityscapes-format predictions (labelId PNGs,
1024x2048 by default) with our metrics (PIL decode, labelId -> trainId
table, confusion matrix on device, metrics) and with cityscapesscripts'
`evaluateImgLists`, and checks that the per-class IoUs agree.

Usage:
  python bench/inference.py [--variants=mobilenet_v2,xception_65]
      [--iters=20] [--num_predictions=50] [--height=1024 --width=2048]
      [--output=/tmp/bench_inference.json]
"""

import copy
import json
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.evaluation import metrics as metrics_lib
from deeplab.core.export import onnx_export
from deeplab.core.export import predictors
from deeplab.core.export import saved_model
from deeplab.core.export import tflite_export
from deeplab.core.modeling import deeplab_model

flags.DEFINE_list("variants", ["mobilenet_v2", "xception_65"],
                  "Model variants to time.")
flags.DEFINE_integer("size", 513, "Input height and width.")
flags.DEFINE_integer("iters", 20, "Timed runs per format (after 2 warm-up).")
flags.DEFINE_integer("num_predictions", 50, "Predictions for the metric run.")
flags.DEFINE_integer("height", 1024, "Prediction height for the metric run.")
flags.DEFINE_integer("width", 2048, "Prediction width for the metric run.")
flags.DEFINE_boolean("skip_models", False, "Only run the metric part.")
flags.DEFINE_string("output", None, "Optional JSON file for the results.")
FLAGS = flags.FLAGS

MODEL_CONFIGS = {
    "mobilenet_v2": dict(model_variant="mobilenet_v2", output_stride=16,
                         atrous_rates=(), decoder_output_stride=None),
    "xception_65": dict(model_variant="xception_65", output_stride=16,
                        atrous_rates=(6, 12, 18), decoder_output_stride=4),
}


def _time(run, iters):
  for _ in range(2):
    run()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  times.sort()
  return {
      "p50_ms": 1000 * statistics.median(times),
      "p90_ms": 1000 * times[min(len(times) - 1, int(0.9 * len(times)))],
      "images_per_s": len(times) / sum(times),
  }


def bench_variant(name, size, iters, folder):
  """Exports one variant to every format and times each."""
  model = deeplab_model.build_deeplab_model(
      config_lib.ModelConfig(num_classes=21, **MODEL_CONFIGS[name]))
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (size, size, 3), np.uint8)
  results = {}
  start = time.time()
  version = saved_model.export_saved_model(model, os.path.join(folder, name))
  fp32 = os.path.join(folder, f"{name}_fp32.tflite")
  int8 = os.path.join(folder, f"{name}_int8.tflite")
  with open(fp32, "wb") as f:
    f.write(tflite_export.convert(model, (size, size), "float32"))
  calibration = [rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
                 for _ in range(4)]
  with open(int8, "wb") as f:
    f.write(tflite_export.convert(model, (size, size), "int8", calibration))
  onnx_path = onnx_export.write_onnx(model, os.path.join(folder,
                                                         f"{name}.onnx"))
  print(f"{name}: exported in {time.time() - start:.0f}s", flush=True)
  predictors = {
      "saved_model": predictors.SavedModelPredictor(version),
      "tflite_fp32": predictors.TFLitePredictor(fp32),
      "tflite_int8": predictors.TFLitePredictor(int8),
      "onnxruntime": predictors.OnnxPredictor(onnx_path),
  }
  for label, predictor in predictors.items():
    results[label] = _time(lambda p=predictor: p(image), iters)
    results[label]["size_mb"] = (
        os.path.getsize({"tflite_fp32": fp32, "tflite_int8": int8,
                         "onnxruntime": onnx_path}[label]) / 2**20
        if label != "saved_model" else
        sum(os.path.getsize(os.path.join(r, n))
            for r, _, files in os.walk(version) for n in files) / 2**20)
    print(f"  {label:<12} p50 {results[label]['p50_ms']:8.1f} ms  p90 "
          f"{results[label]['p90_ms']:8.1f} ms  "
          f"{results[label]['images_per_s']:6.2f} images/s", flush=True)
  return results


def bench_metrics(count, height, width, folder):
  """Our metrics against cityscapesscripts on the same prediction PNGs."""
  from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval  # pylint: disable=g-import-not-at-top
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  eval_ids = np.array([l.id for l in cs_labels.labels
                       if not l.ignoreInEval and l.id >= 0])
  to_train = np.full(256, 255, np.uint8)
  for label in cs_labels.labels:
    if 0 <= label.id < 256 and 0 <= label.trainId < 255:
      to_train[label.id] = label.trainId
  predictions, ground_truths = [], []
  for index in range(count):
    # Blocky ground truth (all 34 labelIds, void included); prediction = GT
    # with a fifth of the blocks changed.
    blocks = rng.integers(0, 34, (height // 64, width // 64))
    gt = np.kron(blocks, np.ones((64, 64), np.int64)).astype(np.uint8)
    changed = np.kron(rng.random(blocks.shape) < 0.2,
                      np.ones((64, 64), bool))
    pred = np.where(changed, rng.choice(eval_ids, gt.shape),
                    np.where(np.isin(gt, eval_ids), gt, eval_ids[0]))
    stem = f"city_{index:06d}_000019"
    gt_path = os.path.join(folder, f"{stem}_gtFine_labelIds.png")
    pred_path = os.path.join(folder, f"{stem}_leftImg8bit.png")
    Image.fromarray(gt).save(gt_path)
    Image.fromarray(pred.astype(np.uint8)).save(pred_path)
    predictions.append(pred_path)
    ground_truths.append(gt_path)

  metrics_lib.confusion_matrix_update(np.zeros((2, 2)), np.zeros((2, 2)),
                                      19, 255)  # Warm up TF's kernels.
  start = time.perf_counter()
  confusion = np.zeros((19, 19), np.int64)
  for pred_path, gt_path in zip(predictions, ground_truths):
    pred = to_train[np.array(Image.open(pred_path))]
    gt = to_train[np.array(Image.open(gt_path))]
    confusion += metrics_lib.confusion_matrix_update(gt, pred, 19,
                                                     255).numpy()
  ours = metrics_lib.metrics_from_confusion_matrix(confusion)
  ours_s = time.perf_counter() - start

  args = copy.copy(cs_eval.args)
  args.evalInstLevelScore = False
  args.JSONOutput = False
  args.quiet = True
  start = time.perf_counter()
  theirs = cs_eval.evaluateImgLists(predictions, ground_truths, args)
  theirs_s = time.perf_counter() - start
  differences = [abs(ours["per_class_iou"][t] -
                     theirs["classScores"][cs_labels.trainId2label[t].name])
                 for t in range(19)]
  return {"num_predictions": count, "size": [height, width],
          "ours_s": ours_s, "cityscapesscripts_s": theirs_s,
          "speedup": theirs_s / ours_s,
          "max_per_class_iou_difference": max(differences),
          "miou": ours["miou"]}


def main(argv):
  del argv
  results = {"cpus": os.cpu_count(), "tensorflow": tf.__version__}
  with tempfile.TemporaryDirectory() as folder:
    if not FLAGS.skip_models:
      for name in FLAGS.variants:
        results[name] = bench_variant(name, FLAGS.size, FLAGS.iters, folder)
    results["metrics"] = bench_metrics(FLAGS.num_predictions, FLAGS.height,
                                       FLAGS.width, folder)
  print(json.dumps(results, indent=2))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
