"""Our SavedModel against the Model Garden's, op type by op type.

bench/inference.py finds our lean SavedModel level with the TF Model
Garden's SavedModel of the same architecture. This script records where
each spends a serving call: it exports both exactly as bench/inference.py
does (ours: `_export_ours`; the Garden's: `serve_garden`, in
bench/.venv-garden, served by a `harness.Worker`), warms them up, then
records --rounds x --iters batch-1 calls of each under the TensorFlow
profiler (`tf.profiler.experimental.start/stop`, alternating the sides)
and sums, per op type, the host time of the ops' events on TensorFlow's
`tf_Compute` threads and how many ran per call. A kernel's event spans its
whole run, its intra-op work included, so the sum is the time the op
graph keeps the executor busy (about the call's wall time on 2 threads,
more where ops overlap). The profiler costs both sides alike.

Usage:
  bash bench/setup_venvs.sh garden    # once
  .venv/bin/python bench/serving_op_profile.py \
      [--variants=mobilenet_v2,resnet_v1_50] [--size=513] [--threads=2] \
      [--rounds=2] [--iters=3]
Writes bench/results/serving_op_profile.json and .md.
"""

import collections
import glob
import os
import tempfile

from absl import app
from absl import flags

import harness
import inference

# --variants, --size, --threads, --rounds, --iters, --warmup, --name and
# --serve are bench/inference.py's flags, with these defaults.
FLAGS = flags.FLAGS
FLAGS.set_default("variants", ["mobilenet_v2", "resnet_v1_50"])
FLAGS.set_default("rounds", 2)
FLAGS.set_default("iters", 3)
FLAGS.set_default("name", "serving_op_profile")

# Executor and thread-pool bookkeeping events, which enclose or interleave
# with the op kernels' own events on the same threads.
_NOT_OPS = ("ExecutorState::", "ExecutorDoneCallback", "ThreadpoolListener::",
            "ParallelFor", "RunWithBorrowedArgs", "Executor")


def op_type(event_name: str) -> str:
  """The op type of a TensorFlow kernel event (`name:Type` or `Type`), or
  '' for bookkeeping events."""
  if event_name.startswith(_NOT_OPS):
    return ""
  return event_name.rsplit(":", 1)[-1]


def op_events(plane_events):
  """{op type: [picoseconds, events]} from (thread name, event name,
  duration in ps) triples: kernel events on `tf_Compute` threads."""
  totals = collections.defaultdict(lambda: [0, 0])
  for thread, name, duration_ps in plane_events:
    kind = op_type(name) if thread.startswith("tf_Compute") else ""
    if kind:
      totals[kind][0] += duration_ps
      totals[kind][1] += 1
  return dict(totals)


def read_xspace(path: str):
  """(thread, event name, ps) of every event of the host plane of a
  profile (`*.xplane.pb`)."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  for plane in space.planes:
    if plane.name != "/host:CPU":
      continue
    for line in plane.lines:
      for event in line.events:
        meta = plane.event_metadata[event.metadata_id]
        yield line.name, meta.display_name or meta.name, event.duration_ps


def profiled(tf, run, iters: int, logdir: str) -> str:
  """Runs `run()` `iters` times under the profiler; returns the XSpace."""
  tf.profiler.experimental.start(logdir)
  try:
    for _ in range(iters):
      run()
  finally:
    tf.profiler.experimental.stop()
  (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*",
                                   "*.xplane.pb"))
  return path


def serve_garden_profiler(variant: str):
  """Worker setup (bench/.venv-garden): the Garden's SavedModel as
  bench/inference.py serves it; each request profiles `iters` calls into
  `logdir` and answers with the XSpace path."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  info, timer = inference.serve_garden(variant, FLAGS.size, FLAGS.threads,
                                       FLAGS.warmup)

  def handler(request):
    path = profiled(tf, lambda: timer({"iters": 1}), request["iters"],
                    request["logdir"])
    return {"xspace": path}

  return info, handler


def our_side(variant: str, folder: str):
  """(info, profile(iters, logdir) -> XSpace path) of our SavedModel."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  config = inference.our_config(variant)
  model = deeplab_model.build_deeplab_model(config_lib.ModelConfig(**config))
  paths = inference._export_ours(model, folder, FLAGS.size, ["saved_model"])  # pylint: disable=protected-access
  run = inference._runner("saved_model", paths["saved_model"], FLAGS.size,  # pylint: disable=protected-access
                          FLAGS.threads)
  for _ in range(FLAGS.warmup):
    run()
  info = {"config": config, "params": int(model.count_params()),
          "tensorflow": tf.__version__}
  return info, lambda iters, logdir: profiled(tf, run, iters, logdir)


def profile_variant(variant: str, folder: str) -> dict:
  """Both sides' op tables of one variant, profiled alternately."""
  ours_info, ours = our_side(variant, folder)
  garden = harness.Worker(
      inference.GARDEN_PYTHON, os.path.abspath(__file__), variant,
      [f"--size={FLAGS.size}", f"--threads={FLAGS.threads}",
       f"--warmup={FLAGS.warmup}"])
  events = {"ours": [], "garden": []}
  try:
    for index in range(FLAGS.rounds):
      logdir = os.path.join(folder, f"{variant}_{index}")
      events["ours"] += read_xspace(ours(FLAGS.iters, logdir + "_ours"))
      answer = garden.request(iters=FLAGS.iters, logdir=logdir + "_garden")
      events["garden"] += read_xspace(answer["xspace"])
  finally:
    garden.close()
  calls = FLAGS.rounds * FLAGS.iters
  tables = {side: {kind: {"ms_per_call": ps / 1e9 / calls,
                          "per_call": count / calls}
                   for kind, (ps, count) in op_events(side_events).items()}
            for side, side_events in events.items()}
  print(f"{variant}: ours {_ms(tables['ours'], tables['ours']):.1f} ms of "
        f"ops per call, garden {_ms(tables['garden'], tables['garden']):.1f}",
        flush=True)
  return {"ours": dict(ours_info, ops=tables["ours"]),
          "garden": dict(garden.info, ops=tables["garden"]), "calls": calls}


def side_by_side(result: dict, top: int = 14) -> list:
  """Rows: op type, ours ms/call, count/call, share; the Garden's; the
  `top` op types by the larger time, the others summed, then the total."""
  ours, garden = result["ours"]["ops"], result["garden"]["ops"]
  kinds = sorted(set(ours) | set(garden), key=lambda k: -max(
      ours.get(k, {}).get("ms_per_call", 0),
      garden.get(k, {}).get("ms_per_call", 0)))
  totals = {"ours": _ms(ours, ours), "garden": _ms(garden, garden)}
  empty = {"ms_per_call": 0.0, "per_call": 0.0}

  def cells(table, side, kinds_):
    ms = sum(table.get(k, empty)["ms_per_call"] for k in kinds_)
    count = sum(table.get(k, empty)["per_call"] for k in kinds_)
    return [f"{ms:.1f}", f"{count:g}", f"{100 * ms / totals[side]:.1f}%"]

  rows = [[kind, *cells(ours, "ours", [kind]),
           *cells(garden, "garden", [kind])] for kind in kinds[:top]]
  if kinds[top:]:
    rows.append([f"{len(kinds) - top} other op types",
                 *cells(ours, "ours", kinds[top:]),
                 *cells(garden, "garden", kinds[top:])])
  rows.append(["**all ops**", *cells(ours, "ours", kinds),
               *cells(garden, "garden", kinds)])
  return rows


CONV_OPS = ("_FusedConv2D", "Conv2D", "DepthwiseConv2dNative",
            "_FusedDepthwiseConv2dNative", "_MklNativeFusedConv2D",
            "_MklNativeConv2D", "_MklFusedConv2D")


def _ms(table: dict, kinds) -> float:
  """Milliseconds per call of the op types `kinds` (all: `table` itself)."""
  return sum(table[k]["ms_per_call"] for k in kinds if k in table)


def reading(results: dict) -> str:
  """The conclusion the figures support, from the figures."""
  parts = []
  for variant in results["variants"]:
    ours, garden = (results[variant][s]["ops"] for s in ("ours", "garden"))
    total = {"ours": _ms(ours, ours), "garden": _ms(garden, garden)}
    differing = [
        f"{k} {ours.get(k, {}).get('per_call', 0):g} vs "
        f"{garden.get(k, {}).get('per_call', 0):g}"
        for k in sorted(set(ours) | set(garden))
        if ours.get(k, {}).get("per_call") != garden.get(k, {}).get(
            "per_call") and max(_ms(ours, [k]) / total["ours"],
                                _ms(garden, [k]) / total["garden"]) > 0.005]
    space_to_batch = ("SpaceToBatchND", "BatchToSpaceND")
    parts.append(
        f"{variant}: ours spends {total['ours'] / total['garden']:.2f}x the "
        f"Garden's op time; convolution kernels are "
        f"{100 * _ms(ours, CONV_OPS) / total['ours']:.0f}% of ours and "
        f"{100 * _ms(garden, CONV_OPS) / total['garden']:.0f}% of theirs, "
        f"unfolded FusedBatchNormV3 {100 * _ms(ours, ['FusedBatchNormV3']) / total['ours']:.0f}%"
        f" / {100 * _ms(garden, ['FusedBatchNormV3']) / total['garden']:.0f}%, "
        f"SpaceToBatchND + BatchToSpaceND "
        f"{100 * _ms(ours, space_to_batch) / total['ours']:.0f}% / "
        f"{100 * _ms(garden, space_to_batch) / total['garden']:.0f}%; "
        "op types whose count per call differs (ours vs theirs, over 0.5% "
        "of the time): " + (", ".join(differing) or "none") + ".")
  return ("**Reading.** " + " ".join(parts) + " Both exports run the "
          "same TensorFlow CPU kernels, fused the same way by grappler's "
          "remapper (Conv2D + BatchNorm + ReLU as `_FusedConv2D`; the "
          "depthwise convolutions' BatchNorm as a separate "
          "`FusedBatchNormV3`; dilated convolutions through "
          "`SpaceToBatchND`/`BatchToSpaceND`), in the same numbers for the "
          "network itself; they differ only at the tail (ours: the argmax "
          "and one resize fewer; theirs: resized logits) and in how many "
          "dilated convolutions take the space-to-batch path. Time "
          "follows the kernels, so level latency is what the same graph on "
          "the same kernels gives; 0.8x would need a different graph, not "
          "a leaner export of this one. What both leave on the table: "
          "folding each depthwise convolution's BatchNorm into its "
          "weights at export would turn FusedBatchNormV3 into a BiasAdd "
          "(TF 2.21's CPU remapper does not fuse DepthwiseConv2dNative + "
          "BiasAdd + Relu6: checked once), and a Conv2D with native "
          "dilations would be one `_FusedConv2D` without the space-to-batch "
          "pair (`bench/dilated_conv.py`: 1.07x on ResNet's block-4 "
          "convolutions, and no gradient on CPU), while "
          "DepthwiseConv2dNative has no "
          "native dilation on CPU (ASPP's dilated depthwise convolutions "
          "keep the pair).")


def markdown(results: dict) -> str:
  lines = [f"{results['size']}x{results['size']}, batch 1, "
           f"{results['threads']} threads each, {FLAGS.rounds} alternating "
           f"rounds of {FLAGS.iters} profiled calls per side after "
           f"{FLAGS.warmup} warm-up calls; ms per call summed over the "
           "`tf_Compute` threads; count: kernel runs per call.\n"]
  header = ["op type", "ours ms", "ours count", "ours share", "Garden ms",
            "Garden count", "Garden share"]
  for variant in results["variants"]:
    result = results[variant]
    lines.append(f"**{variant}** (ours: TF {result['ours']['tensorflow']}, "
                 f"{result['ours']['params']:,} parameters; Garden: TF "
                 f"{result['garden']['tensorflow']}, "
                 f"{result['garden']['params']:,} parameters)\n")
    lines.append(harness.markdown_table(header, side_by_side(result)) + "\n")
  lines.append(reading(results))
  return "\n".join(lines)


def main(argv):
  del argv
  if FLAGS.serve:
    harness.serve(lambda: serve_garden_profiler(FLAGS.serve))
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, FLAGS.threads)
  results = {"size": FLAGS.size, "threads": FLAGS.threads,
             "variants": FLAGS.variants}
  with tempfile.TemporaryDirectory() as folder:
    for variant in FLAGS.variants:
      results[variant] = profile_variant(variant, folder)
  results["machine"] = harness.machine()
  text = markdown(results)
  print(text)
  print("written:", harness.write_results(FLAGS.name, results, text))


if __name__ == "__main__":
  app.run(main)
