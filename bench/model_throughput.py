"""Model throughput on CPU: ours against keras-hub and the TF Model Garden.

Measures, at one stated input size and batch, for each implementation:

* forward images/s (inference mode) and train-step images/s (forward,
  softmax cross-entropy against fixed random labels, gradients, an SGD
  update, all in one `tf.function`);
* FLOPs per image of the forward pass (2 x the multiply-accumulates of
  conv and dense layers, counted as `deeplab.core.modeling.model_stats` does, by the
  same code for every implementation), and the achieved GFLOP/s: forward
  FLOPs / forward time, and 3x forward FLOPs / train-step time (the usual
  backward ~ 2x forward estimate);
* a float32 matrix-multiply peak (2048x2048 matmuls) measured in the same
  process, so each achieved GFLOP/s has its own reference.

Implementations (each runs in its own subprocess, one after the other, so
they do not compete for the CPU; keras-hub and the Model Garden run in their
own virtual environments, see `bench/setup_venvs.sh`):

* `mobilenet_v2`, `resnet_v1_50`: our DeepLabv3+ (ASPP lite / ASPP
  [6,12,18], OS16, decoder at OS4, 21 classes).
* `kerashub`: keras-hub's DeepLabV3Plus segmenter on its ResNet-50
  backbone (ASPP on the stride-32 feature, upsampled 8x to the stride-4
  low-level feature), 21 classes.
* `garden`: the Model Garden's `seg_deeplabv3plus_pascal` experiment with a
  dilated ResNet-50 (OS16) instead of its ResNet-101, 21 classes; its
  default head has regular 3x3 convs (about twice our FLOPs), so it is NOT
  the same work as ours.
* `garden_resnet_v1_50`, `garden_mobilenet_v2`: the Model Garden configured
  to our architecture (`garden_configs.same_architecture`: separable ASPP
  and decoder convs, 48 low-level filters, ReLU): the same-work comparison
  with `resnet_v1_50` and `mobilenet_v2`.

Usage:
  python bench/model_throughput.py [--size=256] [--batch=2] [--iters=5]
      [--impls=mobilenet_v2,resnet_v1_50,kerashub,garden,
              garden_resnet_v1_50,garden_mobilenet_v2]
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 256, "Square input size.")
flags.DEFINE_integer("batch", 2, "Batch size.")
flags.DEFINE_integer("iters", 5, "Timed iterations (after 2 warm-up ones).")
flags.DEFINE_integer("repeats", 3, "Timed runs; the median is reported.")
flags.DEFINE_list("impls", ["mobilenet_v2", "garden_mobilenet_v2",
                            "resnet_v1_50", "garden_resnet_v1_50",
                            "kerashub", "garden"],
                  "Implementations to measure.")
flags.DEFINE_string("worker", None, "Internal: measure this one and print "
                    "a JSON line.")

NUM_CLASSES = 21
_BENCH = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_BENCH)
PYTHONS = {
    "mobilenet_v2": sys.executable,
    "resnet_v1_50": sys.executable,
    "kerashub": os.path.join(_BENCH, ".venv-kerashub", "bin", "python"),
    "garden": os.path.join(_BENCH, ".venv-garden", "bin", "python"),
}
PYTHONS["garden_resnet_v1_50"] = PYTHONS["garden_mobilenet_v2"] = (
    PYTHONS["garden"])


# === Models (imported inside each worker's own environment) ===


def _build_ours(variant, size):
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  rates = () if variant == "mobilenet_v2" else (6, 12, 18)
  config = config_lib.ModelConfig(model_variant=variant,
                                  num_classes=NUM_CLASSES, output_stride=16,
                                  atrous_rates=rates, decoder_output_stride=4)
  model = deeplab_model.build_deeplab_model(config, input_shape=(size, size, 3))
  return model, model.trainable_variables


def _build_kerashub(size):
  import keras_hub  # pylint: disable=g-import-not-at-top
  encoder = keras_hub.models.ResNetBackbone(
      input_conv_filters=[64], input_conv_kernel_sizes=[7],
      stackwise_num_filters=[64, 128, 256, 512],
      stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2],
      block_type="bottleneck_block", image_shape=(size, size, 3))
  backbone = keras_hub.models.DeepLabV3Backbone(
      image_encoder=encoder, spatial_pyramid_pooling_key="P5",
      upsampling_size=8, dilation_rates=[6, 12, 18],
      low_level_feature_key="P2", image_shape=(size, size, 3))
  model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone,
                                                   num_classes=NUM_CLASSES)
  return model, model.trainable_variables


def _build_garden(size, variant=None):
  """The Model Garden's model; with `variant`, configured to our architecture."""
  import garden_configs  # pylint: disable=g-import-not-at-top
  model = garden_configs.build_garden_model(size, NUM_CLASSES, variant)
  return model, model.trainable_variables


def _logits(outputs):
  if isinstance(outputs, dict):  # The Model Garden returns {"logits": ...}.
    outputs = outputs["logits"]
  return outputs


# === Measurement (worker) ===


def _timed(fn, x, iters, repeats):
  fn(x)
  fn(x)
  runs = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(iters):
      out = fn(x)
    float(out.numpy().ravel()[0])  # Wait for the result.
    runs.append(time.perf_counter() - start)
  return statistics.median(runs)


def _matmul_peak(tf, n=2048, iters=10):
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y))
  matmul(a, b)
  start = time.perf_counter()
  for _ in range(iters):
    out = matmul(a, b)
  float(out[0, 0])
  return 2.0 * n ** 3 * iters / (time.perf_counter() - start) / 1e9


def _forward_macs(tf, keras_module, model, spec):
  """Multiply-accumulates of conv/dense layers for ONE image of `spec`.

  Each layer's count leaves out the batch dimension (`out_shape[1:-1]`), so
  the sum is per image whatever the batch size of `spec`; do not divide it
  by the batch again (an earlier version did, halving every FLOP figure at
  batch 2).

  The same count as `deeplab.core.modeling.model_stats` (which the other venvs cannot
  import): `call` of each counted layer class records its static shapes
  while the forward pass is traced. Unlike the TF profiler, it counts an
  atrous conv at its useful size, not the space-to-batch padded one.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  layers = keras_module.layers
  records = []

  def macs(layer, in_shape, out_shape):
    spatial = int(np.prod([int(d) for d in out_shape[1:-1]] or [1]))
    cin = int(in_shape[-1])
    if isinstance(layer, layers.Dense):
      rows = int(np.prod([int(d) for d in in_shape[1:-1]] or [1]))
      return rows * cin * layer.units
    kernel = int(np.prod(layer.kernel_size))
    if isinstance(layer, layers.DepthwiseConv2D):
      return spatial * kernel * cin * layer.depth_multiplier
    if isinstance(layer, layers.SeparableConv2D):
      return spatial * cin * layer.depth_multiplier * (kernel + layer.filters)
    groups = getattr(layer, "groups", 1) or 1
    return spatial * kernel * (cin // groups) * layer.filters

  classes = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D,
             layers.Dense)
  originals = {cls: cls.__dict__.get("call") for cls in classes}
  try:
    for cls in classes:
      base_call = cls.call

      def call(self, inputs, *args, _base=base_call, _cls=cls, **kwargs):
        outputs = _base(self, inputs, *args, **kwargs)
        if type(self).call is getattr(_cls, "call"):  # Count once per call.
          records.append(macs(self, inputs.shape, outputs.shape))
        return outputs

      cls.call = call
    tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
  finally:
    for cls, original in originals.items():
      if original is None:
        del cls.call
      else:
        cls.call = original
  return sum(records)


def measure(impl, size, batch, iters, repeats):
  """Measures one implementation in this process; returns a dict."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if impl == "kerashub":
    model, variables = _build_kerashub(size)
  elif impl.startswith("garden"):
    model, variables = _build_garden(size, impl[len("garden_"):] or None)
  else:
    model, variables = _build_ours(impl, size)
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)),
                       tf.float32)
  spec = tf.TensorSpec([batch, size, size, 3], tf.float32)

  @tf.function(input_signature=[spec])
  def forward(x):
    return _logits(model(x, training=False))

  out_shape = forward(images).shape
  labels = tf.constant(rng.integers(0, NUM_CLASSES, out_shape[:3]), tf.int32)

  @tf.function(input_signature=[spec])
  def train_step(x):
    with tf.GradientTape() as tape:
      logits = tf.cast(_logits(model(x, training=True)), tf.float32)
      loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, variables)
    for variable, grad in zip(variables, grads):
      if grad is not None:
        variable.assign_sub(1e-4 * tf.convert_to_tensor(grad))
    return loss

  if impl.startswith("garden"):
    import tf_keras as keras_module  # pylint: disable=g-import-not-at-top
  else:
    import keras as keras_module  # pylint: disable=g-import-not-at-top
  flops = 2.0 * _forward_macs(tf, keras_module, model, spec)  # Per image.
  forward_s = _timed(forward, images, iters, repeats)
  train_s = _timed(train_step, images, iters, repeats)
  peak = _matmul_peak(tf)
  forward_ips = batch * iters / forward_s
  train_ips = batch * iters / train_s
  return {
      "impl": impl,
      "params": int(sum(np.prod(v.shape) for v in variables)),
      "output_shape": list(out_shape),
      "gflop_per_image": flops / 1e9,
      "forward_images_per_s": forward_ips,
      "train_images_per_s": train_ips,
      "forward_gflop_per_s": flops * forward_ips / 1e9,
      "train_gflop_per_s": 3 * flops * train_ips / 1e9,
      "matmul_peak_gflop_per_s": peak,
      "tf_version": tf.__version__,
  }


# === Driver ===


def _run_worker(impl):
  python = PYTHONS[impl]
  if not os.path.exists(python):
    return {"impl": impl,
            "error": f"{python} missing: run bash bench/setup_venvs.sh"}
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.pathsep.join([_BENCH, os.environ.get(
                 "PYTHONPATH", "")]))
  cmd = [python, os.path.join(_BENCH, "model_throughput.py"),
         f"--worker={impl}", f"--size={FLAGS.size}", f"--batch={FLAGS.batch}",
         f"--iters={FLAGS.iters}", f"--repeats={FLAGS.repeats}"]
  start = time.perf_counter()
  result = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=_REPO, check=False)
  lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
  if result.returncode or not lines:
    return {"impl": impl, "error": (result.stderr or result.stdout)[-2000:]}
  record = json.loads(lines[-1])
  record["wall_s"] = time.perf_counter() - start
  return record


def main(argv):
  del argv
  if FLAGS.worker:
    print(json.dumps(measure(FLAGS.worker, FLAGS.size, FLAGS.batch,
                             FLAGS.iters, FLAGS.repeats)))
    return
  print(f"size {FLAGS.size}x{FLAGS.size}, batch {FLAGS.batch}, "
        f"{FLAGS.iters} iterations x {FLAGS.repeats} runs (median), "
        f"{os.cpu_count()} CPUs")
  records = []
  for impl in FLAGS.impls:
    record = _run_worker(impl)
    records.append(record)
    if "error" in record:
      print(f"{impl}: FAILED\n{record['error']}")
      continue
    print(f"{impl}: {json.dumps(record)}", flush=True)
  good = [r for r in records if "error" not in r]
  base = next((r for r in good if r["impl"] == "resnet_v1_50"), None)
  print("\n| impl | TF | params | GFLOP/img | fwd img/s | train img/s | fwd "
        "GFLOP/s (% of matmul peak) | train GFLOP/s (%) | matmul peak GFLOP/s |"
        " fwd / train speed vs resnet_v1_50 |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in good:
    peak = r["matmul_peak_gflop_per_s"]
    ratio = ""
    if base:
      ratio = (f"{r['forward_images_per_s'] / base['forward_images_per_s']:.2f}"
               f" / {r['train_images_per_s'] / base['train_images_per_s']:.2f}")
    print(f"| {r['impl']} | {r['tf_version']} | {r['params'] / 1e6:.1f}M | "
          f"{r['gflop_per_image']:.2f} | {r['forward_images_per_s']:.2f} | "
          f"{r['train_images_per_s']:.2f} | {r['forward_gflop_per_s']:.1f} "
          f"({100 * r['forward_gflop_per_s'] / peak:.0f}%) | "
          f"{r['train_gflop_per_s']:.1f} "
          f"({100 * r['train_gflop_per_s'] / peak:.0f}%) | {peak:.1f} | "
          f"{ratio} |")
  by_impl = {r["impl"]: r for r in good}
  for variant in ("mobilenet_v2", "resnet_v1_50"):  # Same-work pairs.
    ours, garden = by_impl.get(variant), by_impl.get(f"garden_{variant}")
    if ours and garden:
      forward, train = (ours[key] / garden[key] for key in (
          "forward_images_per_s", "train_images_per_s"))
      print(f"same architecture, {variant}: ours / Model Garden images/s "
            f"forward {forward:.2f}x, train step {train:.2f}x; GFLOP/img "
            f"{ours['gflop_per_image']:.2f} vs {garden['gflop_per_image']:.2f}")


if __name__ == "__main__":
  app.run(main)
