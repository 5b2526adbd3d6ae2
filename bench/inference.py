"""CPU inference latency of the export formats, timed alternately and fairly.

For each variant (our DeepLabv3+: OS16, ASPP lite for mobilenet_v2 and
[6, 12, 18] otherwise, decoder at OS4, 21 classes, random weights: speed
does not depend on them) it exports every format at --size x --size and
times pairs of them in ONE process, alternating: after warm-up, A for
--iters calls, B for --iters calls, A, B, ... (--rounds times), every
runtime on --threads threads. A busy machine then slows both sides alike:
read the ratios. Each pair reports per-call medians and bests, and how
many times faster A is than B (`harness.speed_ratio`: > 1 means A is
faster; medians, bests, and the median of the per-round ratios).

Formats (batch 1, uint8 pixels in, labels out unless named otherwise):
* `saved_model`: our lean SavedModel's `serving_default`;
* `saved_model_probabilities`: the same with --export_probabilities;
* `saved_model_fast`: the same with official
  `--noprediction_with_upsampled_logits` (argmax at the logits' stride,
  labels resized by nearest neighbour);
* `onnx`: the lean ONNX export on onnxruntime (CPU provider);
* `tflite_float32`, `tflite_int8`: LiteRT (`ai_edge_litert`), fixed size;
* `mnn_float32`, `mnn_uint8`: MNN, fixed size (needs the `mnn` package;
  uint8 calibrated, like tflite_int8, on 4 random images);
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
      [--pairs=saved_model:garden,onnx:saved_model,...] [--name=inference]
Writes bench/results/<name>.json and .md.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags

import harness

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
    "mnn_uint8:mnn_float32", "saved_model:saved_model_probabilities",
    "saved_model_fast:saved_model"],
    "A:B pairs to time.")
flags.DEFINE_string("name", "inference", "Result file name in bench/results.")
flags.DEFINE_string("serve", None, "Internal: serve this Garden variant "
                    "over stdin/stdout (harness.Worker).")
FLAGS = flags.FLAGS

NUM_CLASSES = 21
GARDEN_PYTHON = harness.VENV_PYTHONS["garden"]


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
  rng = np.random.default_rng(0)
  images = [rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
            for _ in range(4)]  # Calibration of the int8 formats.
  for name in names:
    start = time.time()
    path = os.path.join(folder, name)
    if name == "saved_model_fast":  # --noprediction_with_upsampled_logits
      model.prediction_with_upsampled_logits = False
      try:
        paths[name] = saved_model.export_saved_model(model, path)
      finally:
        model.prediction_with_upsampled_logits = True
    elif name.startswith("saved_model"):
      paths[name] = saved_model.export_saved_model(
          model, path, with_probabilities=name.endswith("probabilities"))
    elif name == "onnx":
      paths[name] = onnx_export.write_onnx(model, path + ".onnx")
    elif name.startswith("mnn"):
      paths[name] = mnn_export.write_mnn(
          model, path + ".mnn", (size, size), name.split("_", 1)[1],
          calibration_images=images if name == "mnn_uint8" else None)
    elif name.startswith("tflite"):
      quantization = name.split("_", 1)[1]
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
  if name.startswith("mnn"):
    from deeplab.core.export import predictors  # pylint: disable=g-import-not-at-top
    predictor = predictors.MnnPredictor(path, num_threads=threads)
    canvas = image[0].astype(np.float32)
    return lambda: predictor._run(canvas)  # pylint: disable=protected-access
  raise ValueError(f"--pairs: unknown format {name!r}.")


def serve_garden(variant, size, threads, warmup):
  """Worker setup: exports and loads the Garden's SavedModel; returns
  (info, handler) for `harness.serve`, the handler timing N calls."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, threads)
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
  info = {"config": garden_configs.same_architecture(variant),
          "params": int(sum(np.prod(v.shape) for v in model.variables)),
          "tensorflow": tf.__version__}
  return info, lambda request: {"seconds": harness.timed(run,
                                                         request["iters"])}


def time_pair(a, b, iters, rounds):
  """Alternates A and B (harness.alternate); each sample is the mean time
  of `iters` calls. Returns per-call medians and bests in ms, and how many
  times faster A is than B."""
  samples = harness.alternate({a[0]: lambda: a[1](iters),
                               b[0]: lambda: b[1](iters)}, rounds,
                              warmup=0, log=None)
  summary = {name: {"median_ms": 1000 * s["median"],
                    "min_ms": 1000 * s["best"], "samples": len(values)}
             for name, values in samples.items()
             for s in [harness.summarize(values)]}
  summary["speed_a_over_b"] = harness.speed_ratio(samples[a[0]],
                                                  samples[b[0]])
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
      garden = harness.Worker(
          GARDEN_PYTHON, os.path.abspath(__file__), variant,
          [f"--size={FLAGS.size}", f"--threads={FLAGS.threads}",
           f"--warmup={FLAGS.warmup}"])
      results["garden"] = garden.info
      print(f"  garden: {json.dumps(garden.info['config'])}, "
            f"{garden.info['params']:,} parameters, TF "
            f"{garden.info['tensorflow']}")
      timers["garden"] = lambda iters: garden.request(iters=iters)["seconds"]
  for name, path in paths.items():
    run = _runner(name, path, FLAGS.size, FLAGS.threads)
    for _ in range(FLAGS.warmup):
      run()
    timers[name] = lambda iters, run=run: harness.timed(run, iters)
  try:
    for a, b in pairs:
      if a in timers and b in timers:
        result = time_pair((a, timers[a]), (b, timers[b]), FLAGS.iters,
                           FLAGS.rounds)
        results[f"{a}:{b}"] = result
        print(f"  {a:>26} {result[a]['median_ms']:8.1f} ms (min "
              f"{result[a]['min_ms']:7.1f}) | {b:<26} "
              f"{result[b]['median_ms']:8.1f} ms (min "
              f"{result[b]['min_ms']:7.1f}) | A faster by: medians "
              f"{result['speed_a_over_b']['median']:.2f}x, bests "
              f"{result['speed_a_over_b']['best']:.2f}x, per round "
              f"{result['speed_a_over_b']['paired']:.2f}x", flush=True)
  finally:
    if garden:
      garden.close()
  return results


def main(argv):
  del argv
  if FLAGS.serve:
    harness.serve(lambda: serve_garden(FLAGS.serve, FLAGS.size,
                                       FLAGS.threads, FLAGS.warmup))
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, FLAGS.threads)
  print(f"{FLAGS.size}x{FLAGS.size}, batch 1, {FLAGS.threads} threads each, "
        f"{FLAGS.rounds} rounds of {FLAGS.iters} calls per side after "
        f"{FLAGS.warmup} warm-up, {os.cpu_count()} CPUs")
  results = {"size": FLAGS.size, "threads": FLAGS.threads}
  with tempfile.TemporaryDirectory() as folder:
    for variant in FLAGS.variants:
      results[variant] = bench_variant(variant, folder)
  results["machine"] = harness.machine()
  markdown = (f"{FLAGS.size}x{FLAGS.size}, batch 1, {FLAGS.threads} threads "
              f"per runtime, {FLAGS.rounds} alternating rounds of "
              f"{FLAGS.iters} calls after {FLAGS.warmup} warm-up calls.\n\n"
              + _table(results))
  print(markdown)
  print("written:", harness.write_results(FLAGS.name, results, markdown))


def _table(results):
  """One row per timed pair: per-call ms of each side, A's speed over B."""
  rows = []
  for variant in FLAGS.variants:
    for pair, r in results[variant].items():
      if ":" not in pair:
        continue
      a, b = pair.split(":")
      speed = r["speed_a_over_b"]
      rows.append([variant, a, f"{r[a]['median_ms']:.1f} "
                   f"({r[a]['min_ms']:.1f})", b, f"{r[b]['median_ms']:.1f} "
                   f"({r[b]['min_ms']:.1f})", f"{speed['median']:.2f}x",
                   f"{speed['best']:.2f}x", f"{speed['paired']:.2f}x"])
  return harness.markdown_table(
      ["variant", "A", "A ms median (best)", "B", "B ms median (best)",
       "A speed / B: medians", "bests", "per round"], rows)


if __name__ == "__main__":
  app.run(main)
