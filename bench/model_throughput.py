"""Model throughput on CPU: ours against the Model Garden and keras-hub.

The same work on every side: one input size, batch and thread count; a
forward pass in inference mode, and a training step (forward, softmax
cross-entropy against fixed random labels at the input size, gradients, an
SGD update, one `tf.function`); logits are compared at the input size on
every side (`_logits`). Each side is a long-lived worker process in its own venv
(`harness.Worker`); after a warm-up round the driver alternates the sides,
train steps then forward passes, `--rounds` times (`harness.alternate`),
and reports each side's median and best images/s and the speed ratios of
the same-work pairs. It also reports:

* FLOPs per image of the forward pass: 2 x the multiply-accumulates of
  conv and dense layers, counted as `deeplab.core.modeling.model_stats`
  does, by the same code for every side (`_forward_macs`), per image;
* a float32 matmul peak (2048x2048) measured each round inside our
  resnet_v1_50 worker, the reference for its achieved forward GFLOP/s.

Sides:

* `mobilenet_v2`, `resnet_v1_50`: our DeepLabv3+ (ASPP lite / ASPP
  [6,12,18] with separable convs, OS16, decoder at OS4, 21 classes).
* `garden_mobilenet_v2`, `garden_resnet_v1_50`: the Model Garden
  configured to the same architecture (`garden_configs.same_architecture`:
  dilated backbone at OS16 with the 7x7 stem and no multigrid, separable
  ASPP and decoder convs, 48 low-level filters, ReLU).
* `mobilenet_v2_xla`, `resnet_v1_50_xla`: ours with both steps compiled by
  XLA (`--jit_compile` of train.py), to measure that lever.
* `kerashub`: keras-hub's DeepLabV3Plus segmenter on its ResNet-50, the
  closest it allows; differences printed with its row (no dilation: ASPP
  on the stride-32 map, regular 3x3 convs in ASPP and decoder).
* `garden`: the Model Garden's default `seg_deeplabv3plus_pascal` head
  (regular 3x3 convs, about twice our FLOPs) on a dilated ResNet-50: NOT
  the same work, kept only to show what the old claim compared.

Usage:
  python bench/model_throughput.py [--size=512] [--batch=2] [--iters=2]
      [--rounds=5] [--threads=2] [--impls=mobilenet_v2,garden_mobilenet_v2,
      resnet_v1_50,garden_resnet_v1_50,kerashub] [--name=model_throughput]
Writes bench/results/<name>.json and .md.
"""

import os

from absl import app
from absl import flags

import harness

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 512, "Square input size.")
flags.DEFINE_integer("batch", 2, "Batch size.")
flags.DEFINE_integer("iters", 2, "Calls per sample.")
flags.DEFINE_integer("rounds", 5, "Alternating rounds after the warm-up.")
flags.DEFINE_integer("threads", 2, "Intra- and inter-op threads, every side.")
flags.DEFINE_list("impls", ["mobilenet_v2", "garden_mobilenet_v2",
                            "resnet_v1_50", "garden_resnet_v1_50",
                            "kerashub"], "Sides to measure.")
flags.DEFINE_list("modes", ["train", "forward"], "What to time.")
flags.DEFINE_string("name", "model_throughput", "Result file name in "
                    "bench/results.")
flags.DEFINE_string("serve", None, "Internal: serve this side.")

NUM_CLASSES = 21
SAME_WORK = (("mobilenet_v2", "garden_mobilenet_v2"),
             ("mobilenet_v2_xla", "garden_mobilenet_v2"),
             ("resnet_v1_50_xla", "garden_resnet_v1_50"),
             ("mobilenet_v2_xla", "mobilenet_v2"),
             ("resnet_v1_50_xla", "resnet_v1_50"),
             ("resnet_v1_50", "garden_resnet_v1_50"),
             ("resnet_v1_50", "kerashub"), ("resnet_v1_50", "garden"))
KERASHUB_DIFFERENCES = (
    "ResNet-50 v1 without dilation: ASPP [6,12,18] on the stride-32 map, "
    "upsampled x8 to P2; regular 3x3 convs in ASPP and decoder")


def _venv(impl):
  return impl.split("_")[0] if impl.startswith(("garden", "kerashub")) else (
      "ours")


# === Models (imported inside each worker's own environment) ===


def _build_ours(variant, size):
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  rates = () if variant == "mobilenet_v2" else (6, 12, 18)
  config = config_lib.ModelConfig(model_variant=variant,
                                  num_classes=NUM_CLASSES, output_stride=16,
                                  atrous_rates=rates, decoder_output_stride=4)
  model = deeplab_model.build_deeplab_model(config, input_shape=(size, size, 3))
  described = {"model_variant": variant, "output_stride": 16,
               "atrous_rates": list(rates), "decoder_output_stride": 4,
               "aspp_with_separable_conv": config.aspp_with_separable_conv,
               "decoder_use_separable_conv": config.decoder_use_separable_conv}
  return model, described


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
  return model, {"keras_hub": keras_hub.__version__,
                 "differences": KERASHUB_DIFFERENCES}


def _build_garden(size, variant=None):
  """The Model Garden's model; with `variant`, configured to our architecture."""
  import garden_configs  # pylint: disable=g-import-not-at-top
  model = garden_configs.build_garden_model(size, NUM_CLASSES, variant)
  return model, (garden_configs.same_architecture(variant) if variant else
                 "seg_deeplabv3plus_pascal default head, dilated ResNet-50")


def _logits(tf, outputs, size):
  """Logits at the input size, as every side's own trainer and server use
  them: the Model Garden's model stops at stride 4, and its
  `SegmentationLoss` (use_groundtruth_dimension=True, the default) and its
  serving module resize them bilinearly to the labels' / image's size;
  ours and keras-hub's already end at the input size (no-op resize)."""
  if isinstance(outputs, dict):  # The Model Garden returns {"logits": ...}.
    outputs = outputs["logits"]
  if outputs.shape[1:3] != (size, size):
    outputs = tf.image.resize(outputs, (size, size), method="bilinear")
  return outputs


# === Measurement (worker) ===


def _matmul_seconds(tf, n=2048):
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y))
  float(matmul(a, b)[0, 0])
  return lambda: float(matmul(a, b)[0, 0])


def _forward_macs(tf, keras_module, model, spec):
  """Multiply-accumulates of conv/dense layers for ONE image of `spec`.

  Each layer's count leaves out the batch dimension (`out_shape[1:-1]`), so
  the sum is per image whatever the batch size of `spec`; do not divide it
  by the batch again (an earlier version did, halving every FLOP figure at
  batch 2).

  The same count as `deeplab.core.modeling.model_stats` (which the other
  venvs cannot import): `call` of each counted layer class records its
  static shapes while the forward pass is traced. Unlike the TF profiler,
  it counts an atrous conv at its useful size, not the space-to-batch
  padded one.
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


def _build(impl, size):
  if impl == "kerashub":
    return _build_kerashub(size)
  if impl.startswith("garden"):
    return _build_garden(size, impl[len("garden_"):] or None)
  return _build_ours(impl.removesuffix("_xla"), size)


def _step_functions(tf, model, batch, size, jit_compile=False):
  """The forward pass and the training step, each one `tf.function`
  (compiled with XLA if `jit_compile`)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)),
                       tf.float32)
  spec = tf.TensorSpec([batch, size, size, 3], tf.float32)
  variables = model.trainable_variables

  @tf.function(input_signature=[spec], jit_compile=jit_compile)
  def forward(x):
    return _logits(tf, model(x, training=False), size)

  out_shape = forward(images).shape
  labels = tf.constant(rng.integers(0, NUM_CLASSES, out_shape[:3]), tf.int32)

  @tf.function(input_signature=[spec], jit_compile=jit_compile)
  def train_step(x):
    with tf.GradientTape() as tape:
      logits = tf.cast(_logits(tf, model(x, training=True), size),
                       tf.float32)
      loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, variables)
    for variable, grad in zip(variables, grads):
      if grad is not None:
        variable.assign_sub(1e-4 * tf.convert_to_tensor(grad))
    return loss

  calls = {"forward": lambda: float(tf.reduce_sum(forward(images)[0, 0])),
           "train": lambda: float(train_step(images))}
  return calls, spec, list(out_shape)


def worker_setup(impl):
  """Builds one side; returns (info, handler) for `harness.serve`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, FLAGS.threads)
  model, described = _build(impl, FLAGS.size)
  calls, spec, out_shape = _step_functions(tf, model, FLAGS.batch, FLAGS.size,
                                           impl.endswith("_xla"))
  calls["matmul"] = _matmul_seconds(tf)
  for call in calls.values():  # Trace and warm up.
    call()
  if impl.startswith("garden"):
    import tf_keras as keras_module  # pylint: disable=g-import-not-at-top
  else:
    import keras as keras_module  # pylint: disable=g-import-not-at-top
  if impl.endswith("_xla"):
    described = dict(described, jit_compile=True)
  info = {"impl": impl, "config": described, "tensorflow": tf.__version__,
          "params": int(sum(np.prod(v.shape)
                            for v in model.trainable_variables)),
          "output_shape": out_shape,
          "gflop_per_image": 2e-9 * _forward_macs(tf, keras_module, model,
                                                  spec)}
  return info, lambda request: {"seconds": harness.timed(
      calls[request["op"]], request["iters"])}


# === Driver ===


def _images_per_s(seconds):
  return [FLAGS.batch / s for s in seconds]


def measure(workers):
  """Alternates every (side, mode) and the matmul peak; returns samples."""
  sides = {}
  for mode in FLAGS.modes:
    for impl, worker in workers.items():
      sides[f"{impl}:{mode}"] = (
          lambda w=worker, m=mode: w.request(op=m, iters=FLAGS.iters)[
              "seconds"])
  reference = workers.get("resnet_v1_50") or next(iter(workers.values()))
  sides["matmul_peak"] = lambda: reference.request(op="matmul", iters=10)[
      "seconds"]
  return harness.alternate(sides, FLAGS.rounds, warmup=1)


def report(workers, samples):
  """The result dict and its Markdown tables."""
  matmul = harness.summarize([2 * 2048 ** 3 / s / 1e9
                              for s in samples["matmul_peak"]], False)
  rows, sides = [], {}
  for impl, worker in workers.items():
    info = dict(worker.info)
    for mode in FLAGS.modes:
      info[mode] = harness.summarize(
          _images_per_s(samples[f"{impl}:{mode}"]), lower_is_better=False)
    sides[impl] = info
    forward = info.get("forward", {}).get("median", 0)
    gflops = forward * info["gflop_per_image"]
    rows.append([impl, info["tensorflow"], f"{info['params'] / 1e6:.2f}M",
                 f"{info['gflop_per_image']:.2f}"] + [
                     f"{info[m]['median']:.2f} ({info[m]['best']:.2f})"
                     for m in FLAGS.modes] + [
                         f"{gflops:.0f} ({100 * gflops / matmul['median']:.0f}%)"
                         if forward else ""])
  table = harness.markdown_table(
      ["side", "TF", "params", "GFLOP/img"] +
      [f"{m} img/s median (best)" for m in FLAGS.modes] +
      ["fwd GFLOP/s (% of matmul peak)"], rows)
  ratios, ratio_rows = {}, []
  for ours, peer in SAME_WORK:
    if ours in workers and peer in workers:
      for mode in FLAGS.modes:
        r = harness.speed_ratio(samples[f"{ours}:{mode}"],
                                samples[f"{peer}:{mode}"])
        ratios[f"{ours}/{peer}:{mode}"] = r
        ratio_rows.append([f"{ours} / {peer}", mode, f"{r['median']:.2f}x",
                           f"{r['best']:.2f}x", f"{r['paired']:.2f}x"])
  ratio_table = harness.markdown_table(
      ["pair (ours / peer)", "mode", "ratio of medians", "ratio of bests",
       "median of per-round ratios"], ratio_rows)
  configs = "\n".join(
      f"- `{impl}`: {info['params']:,} parameters, "
      f"{info['gflop_per_image']:.2f} GFLOP/img, output "
      f"{info['output_shape']}, config `{info['config']}`"
      for impl, info in sides.items())
  markdown = (f"{FLAGS.size}x{FLAGS.size}, batch {FLAGS.batch}, "
              f"{FLAGS.threads} intra-op and {FLAGS.threads} inter-op threads "
              f"per side, {FLAGS.rounds} alternating rounds of {FLAGS.iters} "
              f"calls after a warm-up round; matmul peak (2048x2048, in the "
              f"resnet_v1_50 worker) median {matmul['median']:.0f} GFLOP/s."
              f"\n\n{table}\n\n" + (f"{ratio_table}\n\n" if ratio_rows
                                      else "") + configs)
  result = {"machine": harness.machine(), "size": FLAGS.size,
            "batch": FLAGS.batch, "threads": FLAGS.threads,
            "rounds": FLAGS.rounds, "iters": FLAGS.iters,
            "matmul_peak_gflop_per_s": matmul, "sides": sides,
            "ratios": ratios}
  return result, markdown


def main(argv):
  del argv
  if FLAGS.serve:
    harness.serve(lambda: worker_setup(FLAGS.serve))
    return
  args = [f"--{name}={getattr(FLAGS, name)}"
          for name in ("size", "batch", "threads")]
  workers = {}
  try:
    for impl in FLAGS.impls:
      workers[impl] = harness.Worker(harness.VENV_PYTHONS[_venv(impl)],
                                     os.path.abspath(__file__), impl, args)
      print(f"{impl}: {workers[impl].info}", flush=True)
    samples = measure(workers)
  finally:
    for worker in workers.values():
      worker.close()
  result, markdown = report(workers, samples)
  print(markdown)
  print("written:", harness.write_results(FLAGS.name, result, markdown))


if __name__ == "__main__":
  app.run(main)
