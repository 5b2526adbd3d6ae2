"""Dilated 3x3 convolutions on CPU: space-to-batch (what Keras runs) against
TF's native dilated `Conv2D`.

Keras 3's `Conv2D(dilation_rate=r)` calls `tf.nn.convolution`, which runs a
dilated convolution as `SpaceToBatchND`, a plain `Conv2D` and
`BatchToSpaceND` (TF keeps its native dilated kernel for TPUs: "gradient
only supported on TPU for dilations"). `tf.nn.conv2d(..., dilations=r)`
calls the native kernel directly. This measures, on the shapes of our
models, whether switching would pay:

* forward, inference mode: conv, frozen BatchNorm and ReLU in one
  `tf.function` (so grappler's remapper may fuse them), 2 threads, each
  pair alternated (A, B, A, B) after a warm-up round;
* the largest relative difference of the two outputs;
* whether the native kernel has a gradient on CPU (training needs one).

Shapes (513x513 input, output stride 16, so 33x33 at the dilated stage):
`resnet_block4` (dilated ResNet-50's block-4 3x3 convs, rate 2),
`aspp_rate6`/`aspp_rate12` (a non-separable ASPP branch on ResNet's 2048
channels), `train_block4` (the block-4 conv at 512x512, batch 2).

Usage:
  .venv/bin/python bench/dilated_conv.py [--rounds=7] [--iters=3]
"""

import os

from absl import app
from absl import flags

import harness

FLAGS = flags.FLAGS

# name: (input shape NHWC, output channels, rate)
SHAPES = {
    "resnet_block4": ((1, 33, 33, 512), 512, 2),
    "aspp_rate6": ((1, 33, 33, 2048), 256, 6),
    "aspp_rate12": ((1, 33, 33, 2048), 256, 12),
    "train_block4": ((2, 32, 32, 512), 512, 2),
}


def forward_functions(tf, shape, filters, rate):
  """{'space_to_batch': fn, 'native': fn}: conv + frozen BN + ReLU."""
  rng = tf.random.Generator.from_seed(0)
  inputs = rng.normal(shape)
  kernel = rng.normal((3, 3, shape[-1], filters)) * 0.05
  scale, offset = rng.uniform((filters,), 0.5, 1.5), rng.normal((filters,))
  mean, variance = rng.normal((filters,)), rng.uniform((filters,), 0.5, 2)
  convs = {
      "space_to_batch": lambda: tf.nn.convolution(
          inputs, kernel, padding="SAME", dilations=rate),
      "native": lambda: tf.nn.conv2d(inputs, kernel, 1, "SAME",
                                     dilations=rate),
  }

  def block(conv):
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        conv(), scale, offset, mean=mean, variance=variance,
        is_training=False)
    return tf.nn.relu(y)

  return {name: tf.function(lambda conv=conv: block(conv))
          for name, conv in convs.items()}, inputs, kernel


def native_gradient(tf, inputs, kernel, rate) -> str:
  """'yes', or TF's error when the native dilated conv's gradient runs."""
  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(kernel)
      loss = tf.reduce_sum(tf.nn.conv2d(inputs, kernel, 1, "SAME",
                                        dilations=rate))
    return tape.gradient(loss, kernel)
  try:
    step()
    return "yes"
  except tf.errors.OpError as error:
    # The kernel's own words: the last line before the node name.
    lines = [l.strip() for l in error.message.splitlines() if l.strip()]
    return "no: " + [l for l in lines if not l.startswith("[[")][-1]


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, FLAGS.threads)
  result, rows = {"machine": harness.machine(), "shapes": {}}, []
  for name, (shape, filters, rate) in SHAPES.items():
    functions, inputs, kernel = forward_functions(tf, shape, filters, rate)
    a, b = (functions[k]().numpy() for k in ("space_to_batch", "native"))
    difference = float(abs(a - b).max() / abs(a).max())
    samples = harness.alternate(
        {side: lambda fn=fn: harness.timed(lambda: fn().numpy(),
                                           FLAGS.iters) * 1e3
         for side, fn in functions.items()}, FLAGS.rounds)
    ratio = harness.speed_ratio(samples["native"],
                                samples["space_to_batch"])
    gradient = native_gradient(tf, inputs, kernel, rate)
    result["shapes"][name] = {
        "shape": shape, "filters": filters, "rate": rate,
        "max_relative_difference": difference, "ratio": ratio,
        "native_gradient_on_cpu": gradient,
        **{side: harness.summarize(s) for side, s in samples.items()}}
    s2b, native = (result["shapes"][name][k]["median"]
                   for k in ("space_to_batch", "native"))
    rows.append([name, f"{list(shape)} -> {filters}, rate {rate}",
                 f"{s2b:.1f}", f"{native:.1f}", f"{ratio['median']:.2f}x",
                 f"{ratio['paired']:.2f}x", f"{difference:.1e}", gradient])
  markdown = (
      f"conv 3x3 + frozen BatchNorm + ReLU, forward, {FLAGS.threads} "
      f"threads, {FLAGS.rounds} alternating rounds of {FLAGS.iters} calls "
      "after a warm-up round\n\n" + harness.markdown_table(
          ["shape", "input -> filters", "space-to-batch ms", "native ms",
           "native speed: medians", "per round", "max rel. difference",
           "native gradient on CPU"], rows))
  print(markdown)
  print("written:", harness.write_results(FLAGS.name, result, markdown))


if __name__ == "__main__":
  # Defined here, not on import: the tests import this module beside other
  # bench modules that define the same flag names.
  flags.DEFINE_integer("rounds", 7, "Alternating rounds after the warm-up.")
  flags.DEFINE_integer("iters", 3, "Calls per sample.")
  flags.DEFINE_integer("threads", 2, "Intra- and inter-op threads.")
  flags.DEFINE_string("name", "dilated_conv", "Result file name.")
  app.run(main)
