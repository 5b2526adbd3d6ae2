"""Where TFLite int8 time goes against float32: XNNPACK conv kernels, per shape.

LiteRT's Python interpreter (`ai_edge_litert` 2.3) has no per-op profiler
(only the C++ benchmark tool has `--enable_op_profiling`), so this script
takes the model apart instead. For each variant it

1. records every Conv2D / DepthwiseConv2D call of our DeepLabv3+ at
   --size (input shape, kernel, stride, dilation, filters), grouped into
   unique shapes with their counts;
2. converts each unique shape to two single-layer TFLite models, float32
   and full int8 (conv + bias + fused ReLU, as the converter emits the
   folded conv-BN-ReLU of the real model; int8 in and out, per-channel
   weights, calibrated on random inputs), and times them on LiteRT's
   default XNNPACK delegate, --threads threads, alternating float32 and
   int8 (`harness.alternate`);
3. does the same for the whole model's RESIZE_BILINEAR, ARG_MAX and
   standalone RELU ops (`OTHER_OPS`, shapes read from its float32 TFLite
   model);
4. times the whole exported models (bench/inference.py's `tflite_float32`
   and `tflite_int8`) the same way, so the per-layer sums can be read as a
   share of the real model's time (the rest: concatenations, pooling,
   adds, the float preprocessing and quantize op, and the difference
   between isolated and in-graph layers), and counts their ops and XNNPACK partitions (DELEGATE nodes).

It prints the CPU flags that decide int8 throughput on x86 (AVX-512, VNNI:
8-bit dot products; without them XNNPACK's QS8 kernels widen to 16 bits
and multiply pairs with `vpmaddwd`, then accumulate with `vpaddd`: 16
MACs per two 256-bit instructions, the rate of one fp32 FMA's 8).

Usage:
  .venv/bin/python bench/tflite_op_profile.py \
      [--variants=mobilenet_v2,xception_65] [--size=513] [--threads=2] \
      [--rounds=4] [--iters=2]
Writes bench/results/tflite_op_profile.json and .md.
"""

import collections
import tempfile
import time

from absl import app
from absl import flags

import harness
import inference

# --variants, --size, --threads, --rounds, --iters and --name are
# bench/inference.py's flags (imported above), with these defaults.
flags.DEFINE_integer("model_rounds", 4, "float32, int8 turns per model.")
FLAGS = flags.FLAGS
FLAGS.set_default("variants", ["mobilenet_v2", "xception_65"])
FLAGS.set_default("rounds", 4)
FLAGS.set_default("iters", 2)
FLAGS.set_default("name", "tflite_op_profile")

# Flags of /proc/cpuinfo that decide int8 and fp32 conv throughput.
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
             "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def cpu_flags(cpuinfo: str) -> dict:
  """{flag: present} for `CPU_FLAGS`, and the model name, from the text of
  /proc/cpuinfo (its first processor)."""
  present, model = set(), ""
  for line in cpuinfo.splitlines():
    key, _, value = line.partition(":")
    key = key.strip()
    if key == "flags" and not present:
      present = set(value.split())
    elif key == "model name" and not model:
      model = value.strip()
  return {"model": model, **{f: f in present for f in CPU_FLAGS}}


def layer_key(kind: str, input_shape, config: dict) -> tuple:
  """A hashable description of one conv call: what its cost depends on."""
  return (kind, tuple(int(d) for d in input_shape[1:]),
          tuple(config["kernel_size"]), tuple(config["strides"]),
          tuple(config["dilation_rate"]), config["padding"],
          int(config.get("filters") or config.get("depth_multiplier")))


def macs(key: tuple, output_shape) -> int:
  """Multiply-accumulates of one call of the layer `key`."""
  kind, (_, _, channels), kernel, _, _, _, width = key
  height, out_width = output_shape[1:3]
  per_pixel = kernel[0] * kernel[1] * channels * width
  del kind  # A depthwise layer's `width` is its multiplier: same formula.
  return int(height * out_width * per_pixel)


def op_type(key: tuple) -> str:
  """Grouping of the summary: depthwise 3x3, conv 1x1, other convs."""
  kind, _, kernel, strides = key[:4]
  if kind == "depthwise":
    return "DEPTHWISE_CONV_2D"
  name = f"CONV_2D {kernel[0]}x{kernel[1]}"
  return name + (" stride 2" if max(strides) > 1 else "")


def conv_calls(model, size: int) -> collections.OrderedDict:
  """{layer_key: [count, output shape]} of every conv call of one
  forward pass of `model` at size x size (nested layers included)."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  calls = collections.OrderedDict()
  convs = [l for l in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
           if isinstance(l, (keras.layers.Conv2D,
                             keras.layers.DepthwiseConv2D))]

  def recording(layer, original):
    kind = ("depthwise" if isinstance(layer, keras.layers.DepthwiseConv2D)
            else "conv")

    def call(inputs, *args, **kwargs):
      outputs = original(inputs, *args, **kwargs)
      key = layer_key(kind, inputs.shape, layer.get_config())
      calls.setdefault(key, [0, tuple(outputs.shape)])[0] += 1
      return outputs

    return call

  for layer in convs:
    object.__setattr__(layer, "call", recording(layer, layer.call))
  try:
    model(np.zeros((1, size, size, 3), np.float32), training=False)
  finally:
    for layer in convs:
      object.__delattr__(layer, "call")
  return calls


def single_layer_models(key: tuple):
  """(float32, int8) TFLite flatbuffers of conv(key) + bias + ReLU."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  kind, shape, kernel, strides, dilation, padding, width = key
  inputs = keras.Input(shape, batch_size=1)  # Static: as the export.
  options = dict(strides=strides, dilation_rate=dilation, padding=padding,
                 activation="relu")
  layer = (keras.layers.DepthwiseConv2D(kernel, depth_multiplier=width,
                                        **options) if kind == "depthwise"
           else keras.layers.Conv2D(width, kernel, **options))
  model = keras.Model(inputs, layer(inputs))
  rng = np.random.default_rng(0)
  for weight in model.weights:
    weight.assign(rng.normal(0, 0.1, weight.shape).astype(np.float32))
  return float_and_int8(model)


def float_and_int8(model):
  """(float32, full int8) TFLite flatbuffers of a one-input Keras model;
  int8 in, and out unless the output is an integer (ARG_MAX)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  shape = tuple(model.input.shape[1:])
  flatbuffers = []
  for quantized in (False, True):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantized:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.representative_dataset = lambda: (
          [rng.normal(0, 1, (1,) + shape).astype(np.float32)]
          for _ in range(2))
      converter.target_spec.supported_ops = [
          tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
      converter.inference_input_type = tf.int8
      if model.output.dtype == "float32":
        converter.inference_output_type = tf.int8
    flatbuffers.append(converter.convert())
  return flatbuffers


# Non-conv ops of the whole model timed on their own (the rest is small).
OTHER_OPS = ("RESIZE_BILINEAR", "ARG_MAX", "RELU")


def other_op_calls(path: str):
  """({(op, input shape, output shape): count} of the `OTHER_OPS` of a
  TFLite model, {op: count} of all its ops)."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_path=path)
  interpreter.allocate_tensors()  # Applies the XNNPACK delegate.
  shapes = {t["index"]: tuple(int(d) for d in t["shape"])
            for t in interpreter.get_tensor_details()}
  calls = collections.OrderedDict()
  counts = collections.Counter()
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    counts[op["op_name"]] += 1
    if op["op_name"] in OTHER_OPS:
      key = (op["op_name"], shapes[op["inputs"][0]],
             shapes[op["outputs"][0]])
      calls[key] = calls.get(key, 0) + 1
  return calls, dict(counts)


def single_op_models(key: tuple):
  """(float32, int8) TFLite flatbuffers of one `OTHER_OPS` op."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import layers as deeplab_layers  # pylint: disable=g-import-not-at-top
  op, in_shape, out_shape = key
  inputs = keras.Input(in_shape[1:], batch_size=1)
  if op == "RESIZE_BILINEAR":
    function = lambda x: deeplab_layers.resize_bilinear(x, out_shape[1:3])
  elif op == "RELU":
    function = tf.nn.relu
  else:
    function = lambda x: tf.argmax(x, -1, output_type=tf.int32)
  return float_and_int8(keras.Model(inputs, keras.layers.Lambda(
      function, output_shape=out_shape[1:])(inputs)))


def _runner(flatbuffer: bytes, threads: int):
  """A no-argument callable: one invoke of the model (input set once)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
  interpreter.allocate_tensors()
  details = interpreter.get_input_details()[0]
  data = np.random.default_rng(1).integers(-100, 100, details["shape"])
  interpreter.set_tensor(details["index"], data.astype(details["dtype"]))
  ops = [op["op_name"] for op in interpreter._get_ops_details()]  # pylint: disable=protected-access
  return interpreter.invoke, ops


def time_sides(runners: dict, rounds: int, iters: int,
               min_seconds: float = 0.0) -> dict:
  """{side: median ms per call}, sides alternated after one warm-up; each
  sample is at least `iters` calls and about `min_seconds` long."""
  slowest = max(harness.timed(run, 1) for run in runners.values())
  iters = max(iters, int(min_seconds / max(slowest, 1e-6)))
  samples = harness.alternate(
      {name: lambda run=run: harness.timed(run, iters)
       for name, run in runners.items()}, rounds, warmup=1, log=None)
  return {name: 1000 * harness.summarize(values)["median"]
          for name, values in samples.items()}


def profile_layers(calls, threads, rounds, iters) -> list:
  """One row per unique conv shape (or `OTHER_OPS` op): count, MACs,
  float32 and int8 ms."""
  rows = []
  for index, (key, (count, output_shape)) in enumerate(calls.items()):
    float_model, int8_model = (single_layer_models(key)
                               if key[0] in ("conv", "depthwise")
                               else single_op_models(key))
    (float_run, float_ops), (int8_run, int8_ops) = (
        _runner(float_model, threads), _runner(int8_model, threads))
    times = time_sides({"float32": float_run, "int8": int8_run}, rounds,
                       iters, min_seconds=0.03)
    conv = key[0] in ("conv", "depthwise")
    rows.append({"op_type": op_type(key) if conv else key[0],
                 "key": list(key), "count": count,
                 "output_shape": list(output_shape),
                 "macs": macs(key, output_shape) if conv else 0,
                 "float32_ms": times["float32"], "int8_ms": times["int8"],
                 "float32_ops": float_ops, "int8_ops": int8_ops})
    print(f"  [{index + 1}/{len(calls)}] {key} x{count}: float32 "
          f"{times['float32']:.2f} ms, int8 {times['int8']:.2f} ms",
          flush=True)
  return rows


def profile_variant(variant: str, folder: str) -> dict:
  """The layer rows and the whole models' times of one variant."""
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  start = time.time()
  model = deeplab_model.build_deeplab_model(
      config_lib.ModelConfig(**inference.our_config(variant)))
  calls = conv_calls(model, FLAGS.size)
  print(f"{variant}: {sum(c for c, _ in calls.values())} conv calls, "
        f"{len(calls)} unique shapes", flush=True)
  paths = inference._export_ours(  # pylint: disable=protected-access
      model, folder, FLAGS.size, ["tflite_float32", "tflite_int8"])
  runners = {name: inference._runner(name, path, FLAGS.size, FLAGS.threads)  # pylint: disable=protected-access
             for name, path in paths.items()}
  # The whole models before and after the layers: the machine is shared,
  # so the layers' share of the model is read against their mean.
  before = time_sides(runners, FLAGS.model_rounds, FLAGS.iters)
  print(f"  whole model: {before}", flush=True)
  # Op counts include DELEGATE nodes: XNNPACK partitions (ops between them
  # run on LiteRT's own kernels).
  ops = {name: other_op_calls(path) for name, path in paths.items()}
  op_counts = {name: counts for name, (_, counts) in ops.items()}
  calls.update((key, [count, key[2]])
               for key, count in ops["tflite_float32"][0].items())
  rows = profile_layers(calls, FLAGS.threads, FLAGS.rounds, FLAGS.iters)
  after = time_sides(runners, FLAGS.model_rounds, FLAGS.iters)
  print(f"  whole model again: {after}", flush=True)
  print(f"  {variant} done in {time.time() - start:.0f}s", flush=True)
  mean = {name: (before[name] + after[name]) / 2 for name in before}
  return {"config": inference.our_config(variant),
          "model_float32_ms": mean["tflite_float32"],
          "model_int8_ms": mean["tflite_int8"],
          "model_before_ms": before, "model_after_ms": after,
          "op_counts": op_counts, "layers": rows}


def summarize_variant(result: dict) -> list:
  """Per op type: calls, GMACs, summed float32 and int8 ms (count x
  per-call median), int8 speed-up, shares of the whole models' times;
  the convs together, the other ops timed, and the rest of the model."""
  groups = collections.OrderedDict()
  for row in sorted(result["layers"],
                    key=lambda r: (r["op_type"] in OTHER_OPS, r["op_type"])):
    group = groups.setdefault(row["op_type"], collections.Counter())
    group["calls"] += row["count"]
    group["macs"] += row["count"] * row["macs"]
    group["float32_ms"] += row["count"] * row["float32_ms"]
    group["int8_ms"] += row["count"] * row["int8_ms"]
  convs, timed = collections.Counter(), collections.Counter()
  for name, group in groups.items():
    (timed if name in OTHER_OPS else convs).update(group)
  timed.update(convs)
  ordered = collections.OrderedDict(
      (name, group) for name, group in groups.items()
      if name not in OTHER_OPS)
  ordered["all convs"] = convs
  ordered.update((name, groups[name]) for name in OTHER_OPS
                 if name in groups)
  ordered["rest of the model (whole - timed)"] = {
      "calls": 0, "macs": 0,
      "float32_ms": result["model_float32_ms"] - timed["float32_ms"],
      "int8_ms": result["model_int8_ms"] - timed["int8_ms"]}
  ordered["whole model"] = {"calls": 0, "macs": 0,
                            "float32_ms": result["model_float32_ms"],
                            "int8_ms": result["model_int8_ms"]}
  rows = []
  for name, group in ordered.items():
    f32, i8 = group["float32_ms"], group["int8_ms"]
    rows.append({
        "op_type": name, "calls": group["calls"],
        "gmacs": group["macs"] / 1e9, "float32_ms": f32, "int8_ms": i8,
        "int8_speedup": f32 / i8 if i8 > 0 else float("nan"),
        "float32_share": f32 / result["model_float32_ms"],
        "int8_share": i8 / result["model_int8_ms"],
        "float32_gmacs_per_s": group["macs"] / 1e6 / f32 if f32 > 0 else 0,
        "int8_gmacs_per_s": group["macs"] / 1e6 / i8 if i8 > 0 else 0})
  return rows


def markdown(results: dict) -> str:
  """The per-op-type table of every variant, the CPU, and the reading."""
  cpu = results["cpu"]
  flags_line = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu.items()
                         if k != "model")
  lines = [f"CPU: {cpu['model']}; {flags_line}. LiteRT "
           f"{results['litert']}, XNNPACK (default delegate), "
           f"{results['threads']} threads, {results['size']}x"
           f"{results['size']}, batch 1. Layer times: single-layer models "
           "(conv + bias + fused ReLU) of each unique shape, float32 and "
           "full int8, alternated, median per call, times the number of "
           "calls; whole models: bench/inference.py's exports, alternated."
           "\n"]
  header = ["variant", "op type", "calls", "GMACs", "fp32 ms", "int8 ms",
            "int8 speed-up", "fp32 share", "int8 share", "fp32 GMAC/s",
            "int8 GMAC/s"]
  rows = []
  for variant in results["variants"]:
    for row in results[variant]["summary"]:
      rows.append([variant, row["op_type"], row["calls"] or "",
                   f"{row['gmacs']:.2f}" if row["gmacs"] else "",
                   f"{row['float32_ms']:.1f}", f"{row['int8_ms']:.1f}",
                   f"{row['int8_speedup']:.2f}x",
                   f"{100 * row['float32_share']:.0f}%",
                   f"{100 * row['int8_share']:.0f}%",
                   f"{row['float32_gmacs_per_s']:.1f}"
                   if row["gmacs"] else "",
                   f"{row['int8_gmacs_per_s']:.1f}" if row["gmacs"] else ""])
  lines.append(harness.markdown_table(header, rows))
  lines.append("\n" + reading(results))
  return "\n".join(lines)


def reading(results: dict) -> str:
  """The conclusion the figures support, in words, from the figures."""
  parts = []
  for variant in results["variants"]:
    summary = {r["op_type"]: r for r in results[variant]["summary"]}
    convs, whole = summary["all convs"], summary["whole model"]
    kinds = ", ".join(
        f"{name} {row['int8_speedup']:.2f}x ({100 * row['float32_share']:.0f}%"
        " of the float32 time)" for name, row in summary.items()
        if name.startswith(("CONV_2D", "DEPTHWISE")) and
        row["float32_share"] >= 0.05)
    others = ", ".join(f"{name} {row['float32_ms']:.1f} -> "
                       f"{row['int8_ms']:.1f} ms" for name, row in
                       summary.items() if name in OTHER_OPS)
    delegates = {name: counts.get("DELEGATE", 0) for name, counts in
                 results[variant]["op_counts"].items()}
    parts.append(
        f"{variant}: XNNPACK partitions (DELEGATE nodes) float32 "
        f"{delegates.get('tflite_float32')}, int8 "
        f"{delegates.get('tflite_int8')}; the convolutions, summed, are "
        f"{100 * convs['float32_share']:.0f}% of the float32 model's time "
        f"and their int8 speed-up is {convs['int8_speedup']:.2f}x "
        f"({kinds}); "
        f"{others}; the whole model {whole['int8_speedup']:.2f}x.")
  cpu = results["cpu"]
  vnni = cpu["avx512_vnni"] or cpu["avx_vnni"]
  hardware = (
      "This CPU has VNNI, so int8 should gain more than measured here."
      if vnni else
      "This CPU has AVX2 and FMA but no AVX-512 and no VNNI: XNNPACK's "
      "int8 convolutions sign-extend to 16 bits and multiply with "
      "`vpmaddwd` (16 multiplies into 8 int32 pairs, then a `vpaddd` to "
      "accumulate: 8 MACs per instruction), the rate of an fp32 "
      "`vfmadd` (8 MACs), plus requantization work fp32 does not have; "
      "int8 saves memory traffic (4x smaller tensors), not arithmetic.")
  relu_rows = [(v, r) for v in results["variants"]
               for r in results[v]["summary"] if r["op_type"] == "RELU"]
  relu = "".join(
      f" {variant}'s {row['calls']} standalone RELUs (its pre-activation "
      "ReLUs, whose input also feeds the residual branch, so no conv "
      f"absorbs them) take {row['float32_ms']:.1f} ms in float32 and "
      f"{row['int8_ms']:.1f} ms in int8, {100 * row['int8_share']:.0f}% of "
      "the int8 model: LiteRT 2.3's XNNPACK delegate does not take an int8 "
      "RELU (its single-op model has no DELEGATE node; RELU6, LEAKY_RELU, "
      "MAXIMUM with 0 and RELU_N1_TO_1 neither, checked once), so it runs "
      "on LiteRT's own kernel and splits the int8 graph into one XNNPACK "
      "partition per RELU (an int8 MUL by a constant with the RELU fused "
      "into it is delegated: checked once)." for variant, row in relu_rows)
  return ("**Reading.** " + " ".join(parts) + relu + " " + hardware + " The "
          "convolutions are the bulk of both models, so the whole model "
          "cannot run much faster in int8 than its convolutions do; with "
          "the measured per-shape speed-ups the 2x target is out of reach "
          "of these kernels on this CPU (it needs 8-bit dot products: "
          "AVX-512 VNNI / AVX-VNNI on x86, `sdot`/`i8mm` on ARM). Layer "
          "times come from single-layer models (warm caches, one invoke "
          "each), the whole model from the same interpreter: shares are "
          "approximate, and the machine is shared (read the ratios).")


def main(argv):
  del argv
  import ai_edge_litert  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, FLAGS.threads)
  with open("/proc/cpuinfo", encoding="utf-8") as f:
    cpu = cpu_flags(f.read())
  print("CPU:", cpu, flush=True)
  results = {"size": FLAGS.size, "threads": FLAGS.threads, "cpu": cpu,
             "variants": FLAGS.variants,
             "litert": getattr(ai_edge_litert, "__version__", "2.x")}
  with tempfile.TemporaryDirectory() as folder:
    for variant in FLAGS.variants:
      results[variant] = profile_variant(variant, folder)
      results[variant]["summary"] = summarize_variant(results[variant])
  results["machine"] = harness.machine()
  text = markdown(results)
  print(text)
  print("written:", harness.write_results(FLAGS.name, results, text))


if __name__ == "__main__":
  app.run(main)
