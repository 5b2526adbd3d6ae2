"""CPU inference latency of every export format.

For mobilenet_v2 (OS16, ASPP lite, no decoder: the zoo's 2.75B
multiply-adds model) and xception_65 (OS16, ASPP [6, 12, 18], decoder at
OS4: 54.17B), 21 classes, random weights (speed does not depend on them),
measures single-image latency (p50, p90) and throughput at 513x513 for:

* `saved_model`: the exported SavedModel's `serving_default` (uint8 in,
  labels and probabilities out), loaded with `tf.saved_model.load`;
* `tflite_fp32`, `tflite_int8`: the TFLite exports run by the LiteRT
  interpreter (`ai_edge_litert`) with as many threads as cores;
* `onnxruntime`: the ONNX export on onnxruntime's CPU provider.

Every format runs the same graph: pre-processing, network, softmax, argmax.

Metric speed (scoring prediction PNGs against cityscapesscripts) is
`bench/metrics.py`.

Usage:
  python bench/inference.py [--variants=mobilenet_v2,xception_65]
      [--iters=20] [--output=/tmp/bench_inference.json]
"""

import json
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.export import onnx_export
from deeplab.core.export import predictors
from deeplab.core.export import saved_model
from deeplab.core.export import tflite_export
from deeplab.core.modeling import deeplab_model

flags.DEFINE_list("variants", ["mobilenet_v2", "xception_65"],
                  "Model variants to time.")
flags.DEFINE_integer("size", 513, "Input height and width.")
flags.DEFINE_integer("iters", 20, "Timed runs per format (after 2 warm-up).")
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
  by_format = {
      "saved_model": predictors.SavedModelPredictor(version),
      "tflite_fp32": predictors.TFLitePredictor(fp32),
      "tflite_int8": predictors.TFLitePredictor(int8),
      "onnxruntime": predictors.OnnxPredictor(onnx_path),
  }
  for label, predictor in by_format.items():
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


def main(argv):
  del argv
  results = {"cpus": os.cpu_count(), "tensorflow": tf.__version__}
  with tempfile.TemporaryDirectory() as folder:
    for name in FLAGS.variants:
      results[name] = bench_variant(name, FLAGS.size, FLAGS.iters, folder)
  print(json.dumps(results, indent=2))
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
