"""CPU inference latency of the export formats, timed alternately and fairly.

For each variant (our DeepLabv3+: OS16, ASPP lite for mobilenet_v2 and
[6, 12, 18] otherwise, decoder at OS4, 21 classes, random weights: speed
does not depend on them) it exports every format at --size x --size and
times pairs of them in ONE process, alternating: after warm-up, A for
--iters calls, B for --iters calls, A, B, ... (--rounds times), every
runtime on --threads threads. A busy machine then slows both sides alike:
read the ratios. Each pair reports per-call medians, minimums and the
ratio of the medians (A / B: below 1 means A is faster).

Formats (batch 1, uint8 pixels in, labels out unless named otherwise):
* `saved_model`: our lean SavedModel's `serving_default`;
* `saved_model_probabilities`: the same with --export_probabilities;
* `onnx`: the lean ONNX export on onnxruntime (CPU provider);
* `tflite_float32`, `tflite_int8`: LiteRT (`ai_edge_litert`), fixed size;
* `mnn_float32`: MNN, fixed size (needs the `mnn` package);
* `garden`: the TF Model Garden's own SavedModel of the same architecture
  (`garden_configs.same_architecture`; its `SegmentationModule` export,
  logits resized to the input size), served by a long-lived worker in
  bench/.venv-garden (`bash bench/setup_venvs.sh garden`). The worker waits
  on a pipe while we run and we wait while it runs, so the two alternate as
  in-process formats do. Only mobilenet_v2 and resnet_v1_50 have a Garden
  configuration.

Usage:
  python bench/inference.py [--variants=mobilenet_v2,resnet_v1_50,xception_65]
      [--size=513] [--iters=5] [--rounds=6] [--threads=2]
      [--pairs=saved_model:garden,onnx:saved_model,...] [--output=x.json]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

flags.DEFINE_list("variants", ["mobilenet_v2", "resnet_v1_50", "xception_65"],
                  "Model variants to time.")
flags.DEFINE_integer("size", 513, "Input height and width.")
flags.DEFINE_integer("iters", 5, "Calls per turn.")
flags.DEFINE_integer("rounds", 6, "A, B turns per pair (after warm-up).")
flags.DEFINE_integer("warmup", 3, "Untimed calls of each side first.")
flags.DEFINE_integer("threads", 2, "Threads of every runtime.")
flags.DEFINE_list("pairs", [
    "saved_model:garden", "onnx:saved_model", "tflite_int8:tflite_float32",
    "tflite_float32:saved_model", "mnn_float32:saved_model",
    "saved_model:saved_model_probabilities"], "A:B pairs to time.")
flags.DEFINE_string("output", None, "Optional JSON file for the results.")
flags.DEFINE_string("worker", None, "Internal: serve this Garden variant "
                    "over stdin/stdout.")
FLAGS = flags.FLAGS

NUM_CLASSES = 21
_BENCH = os.path.dirname(os.path.abspath(__file__))
GARDEN_PYTHON = os.path.join(_BENCH, ".venv-garden", "bin", "python")


def _set_tf_threads(tf, threads):
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)


def our_config(variant):
  """Our architecture matching `garden_configs.same_architecture`."""
  return dict(model_variant=variant, num_classes=NUM_CLASSES,
              output_stride=16, decoder_output_stride=4,
              atrous_rates=() if variant == "mobilenet_v2" else (6, 12, 18))


def _export_ours(model, folder, size, names):
  """Writes the formats in `names`; returns {name: path}."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab.core.export import mnn_export, onnx_export, saved_model, tflite_export  # pylint: disable=g-import-not-at-top,g-multiple-import
  paths = {}
  for name in names:
    start = time.time()
    path = os.path.join(folder, name)
    if name.startswith("saved_model"):
      paths[name] = saved_model.export_saved_model(
          model, path, with_probabilities=name.endswith("probabilities"))
    elif name == "onnx":
      paths[name] = onnx_export.write_onnx(model, path + ".onnx")
    elif name == "mnn_float32":
      paths[name] = mnn_export.write_mnn(model, path + ".mnn", (size, size))
    elif name.startswith("tflite"):
      quantization = name.split("_", 1)[1]
      rng = np.random.default_rng(0)
      images = [rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
                for _ in range(4)]
      with open(path + ".tflite", "wb") as f:
        f.write(tflite_export.convert(model, (size, size), quantization,
                                      images))
      paths[name] = path + ".tflite"
    else:
      continue
    print(f"  exported {name} in {time.time() - start:.0f}s", flush=True)
  return paths


def _runner(name, path, size, threads):
  """A no-argument callable running one batch-1 inference of `name`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  image = np.random.default_rng(1).integers(0, 256, (1, size, size, 3),
                                            np.uint8)
  if name.startswith("saved_model"):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    signature = tf.saved_model.load(path).signatures["serving_default"]
    tensor = tf.constant(image)
    return lambda: signature(ImageTensor=tensor)["semantic_predictions"].numpy()
  if name == "onnx":
    import onnxruntime  # pylint: disable=g-import-not-at-top
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        path, options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"ImageTensor": image})
  if name.startswith("tflite"):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    pixels = image.astype(details["dtype"])
    output = interpreter.get_output_details()[0]["index"]

    def run():
      interpreter.set_tensor(details["index"], pixels)
      interpreter.invoke()
      return interpreter.get_tensor(output)

    return run
  if name == "mnn_float32":
    from deeplab.core.export import predictors  # pylint: disable=g-import-not-at-top
    predictor = predictors.MnnPredictor(path, num_threads=threads)
    canvas = image[0].astype(np.float32)
    return lambda: predictor._run(canvas)  # pylint: disable=protected-access
  raise ValueError(f"--pairs: unknown format {name!r}.")


class GardenWorker:
  """The Model Garden's SavedModel, served by a process in its own venv."""

  def __init__(self, variant, size, threads, warmup):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=_BENCH, CUDA_VISIBLE_DEVICES="")
    self._process = subprocess.Popen(
        [GARDEN_PYTHON, os.path.abspath(__file__), f"--worker={variant}",
         f"--size={size}", f"--threads={threads}", f"--warmup={warmup}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    self.info = self._read()

  def _read(self):
    for line in self._process.stdout:
      if line.startswith("{"):
        return json.loads(line)
    raise RuntimeError(f"The Garden worker exited ({self._process.wait()}).")

  def times(self, iters):
    self._process.stdin.write(f"{iters}\n")
    self._process.stdin.flush()
    return self._read()["times"]

  def close(self):
    self._process.stdin.close()
    self._process.wait(timeout=60)


def serve_garden(variant, size, threads, warmup):
  """Worker: exports and loads the Garden's SavedModel, then times N calls
  for every N read from stdin (one JSON line each)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _set_tf_threads(tf, threads)
  import garden_configs  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from official.vision.serving import semantic_segmentation  # pylint: disable=g-import-not-at-top
  model = garden_configs.build_garden_model(size, NUM_CLASSES, variant)
  params = exp_factory.get_exp_config("seg_deeplabv3plus_pascal")
  params.task.model.num_classes = NUM_CLASSES
  module = semantic_segmentation.SegmentationModule(
      params, batch_size=1, input_image_size=[size, size], model=model)
  with tempfile.TemporaryDirectory() as folder:
    tf.saved_model.save(module, folder,
                        signatures=module.get_inference_signatures(
                            {"image_tensor": "serving_default"}))
    signature = tf.saved_model.load(folder).signatures["serving_default"]
  image = tf.constant(np.random.default_rng(1).integers(
      0, 256, (1, size, size, 3), np.uint8))
  (input_name,) = signature.structured_input_signature[1]
  run = lambda: signature(**{input_name: image})["logits"].numpy()
  for _ in range(warmup):
    run()
  print(json.dumps({"config": garden_configs.same_architecture(variant),
                    "params": int(sum(np.prod(v.shape)
                                      for v in model.variables)),
                    "tensorflow": tf.__version__}), flush=True)
  for line in sys.stdin:
    times = []
    for _ in range(int(line)):
      start = time.perf_counter()
      run()
      times.append(time.perf_counter() - start)
    print(json.dumps({"times": times}), flush=True)


def _local_times(run, iters):
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return times


def time_pair(a, b, iters, rounds):
  """Alternates A and B; returns per-call medians, minimums and ratios."""
  times = {a[0]: [], b[0]: []}
  for _ in range(rounds):
    for name, timer in (a, b):
      times[name] += timer(iters)
  summary = {name: {"median_ms": 1000 * statistics.median(values),
                    "min_ms": 1000 * min(values), "calls": len(values)}
             for name, values in times.items()}
  summary["median_ratio"] = (summary[a[0]]["median_ms"] /
                             summary[b[0]]["median_ms"])
  summary["min_ratio"] = summary[a[0]]["min_ms"] / summary[b[0]]["min_ms"]
  return summary


def bench_variant(variant, folder):
  """Exports our formats, starts the Garden worker if needed, times pairs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  config = our_config(variant)
  model = deeplab_model.build_deeplab_model(config_lib.ModelConfig(**config))
  print(f"{variant}: ours {json.dumps(config)}, "
        f"{model.count_params():,} parameters, TF {tf.__version__}")
  pairs = [tuple(p.split(":")) for p in FLAGS.pairs]
  names = sorted({n for pair in pairs for n in pair})
  paths = _export_ours(model, folder, FLAGS.size, names)
  timers, results = {}, {"ours": {"config": config,
                                  "params": int(model.count_params())}}
  garden = None
  if "garden" in names:
    if variant not in ("mobilenet_v2", "resnet_v1_50"):
      print(f"  garden: no same-architecture config for {variant}")
    elif not os.path.exists(GARDEN_PYTHON):
      print(f"  garden: {GARDEN_PYTHON} missing: bash bench/setup_venvs.sh "
            "garden")
    else:
      garden = GardenWorker(variant, FLAGS.size, FLAGS.threads, FLAGS.warmup)
      results["garden"] = garden.info
      print(f"  garden: {json.dumps(garden.info['config'])}, "
            f"{garden.info['params']:,} parameters, TF "
            f"{garden.info['tensorflow']}")
      timers["garden"] = garden.times
  for name, path in paths.items():
    run = _runner(name, path, FLAGS.size, FLAGS.threads)
    for _ in range(FLAGS.warmup):
      run()
    timers[name] = lambda iters, run=run: _local_times(run, iters)
  try:
    for a, b in pairs:
      if a in timers and b in timers:
        result = time_pair((a, timers[a]), (b, timers[b]), FLAGS.iters,
                           FLAGS.rounds)
        results[f"{a}:{b}"] = result
        print(f"  {a:>26} {result[a]['median_ms']:8.1f} ms (min "
              f"{result[a]['min_ms']:7.1f}) | {b:<26} "
              f"{result[b]['median_ms']:8.1f} ms (min "
              f"{result[b]['min_ms']:7.1f}) | A/B median "
              f"{result['median_ratio']:.2f}, min {result['min_ratio']:.2f}",
              flush=True)
  finally:
    if garden:
      garden.close()
  return results


def main(argv):
  del argv
  if FLAGS.worker:
    serve_garden(FLAGS.worker, FLAGS.size, FLAGS.threads, FLAGS.warmup)
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _set_tf_threads(tf, FLAGS.threads)
  print(f"{FLAGS.size}x{FLAGS.size}, batch 1, {FLAGS.threads} threads each, "
        f"{FLAGS.rounds} rounds of {FLAGS.iters} calls per side after "
        f"{FLAGS.warmup} warm-up, {os.cpu_count()} CPUs")
  results = {"size": FLAGS.size, "threads": FLAGS.threads}
  with tempfile.TemporaryDirectory() as folder:
    for variant in FLAGS.variants:
      results[variant] = bench_variant(variant, folder)
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
