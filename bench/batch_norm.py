"""Training-step speed: Keras 3's BatchNormalization against our fused one.

Builds the same DeepLabv3+ twice in one process, once with
`keras.layers.BatchNormalization` in every BN slot and once with
`deeplab.core.modeling.batch_norm.FusedBatchNormalization` (the default), and times a
full training step (forward, softmax cross-entropy, gradients, momentum SGD
update, in one `tf.function`) on the same random batch, alternating the two
`--repeats` times so that both see the same machine load.

Usage:
  python bench/batch_norm.py [--variants=mobilenet_v2,resnet_v1_50]
      [--size=96] [--batch=8] [--iters=20] [--repeats=5]
"""

import statistics
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers as deeplab_layers

FLAGS = flags.FLAGS
flags.DEFINE_list("variants", ["mobilenet_v2", "resnet_v1_50"],
                  "Model variants to measure.")
flags.DEFINE_integer("size", 96, "Square input size.")
flags.DEFINE_integer("batch", 8, "Batch size.")
flags.DEFINE_integer("iters", 20, "Timed steps per repeat.")
flags.DEFINE_integer("repeats", 5, "Alternating timed repeats.")

NUM_CLASSES = 5


def _keras_batch_norm(name, momentum, epsilon, synchronized=False):
  return keras.layers.BatchNormalization(
      momentum=momentum, epsilon=epsilon, synchronized=synchronized,
      name=name)


def _train_step_fn(variant: str, keras_bn: bool):
  """A compiled training step of `variant` with the chosen BN layer."""
  fused = deeplab_layers.batch_norm
  if keras_bn:
    deeplab_layers.batch_norm = _keras_batch_norm
  try:
    model = deeplab_model.build_deeplab_model(config_lib.ModelConfig(
        model_variant=variant, num_classes=NUM_CLASSES,
        atrous_rates=() if variant.startswith("mobilenet") else (6, 12, 18),
        batch_norm_momentum=0.9))
  finally:
    deeplab_layers.batch_norm = fused
  optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
  optimizer.build(model.trainable_variables)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(images, labels):
    with tf.GradientTape() as tape:
      loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return loss

  return step


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(
      0, 255, (FLAGS.batch, FLAGS.size, FLAGS.size, 3)).astype(np.float32))
  labels = tf.constant(rng.integers(
      0, NUM_CLASSES, (FLAGS.batch, FLAGS.size, FLAGS.size)).astype(np.int32))
  print(f"TF {tf.__version__}, batch {FLAGS.batch} at "
        f"{FLAGS.size}x{FLAGS.size}, {FLAGS.iters} steps x "
        f"{FLAGS.repeats} repeats")
  print("| variant | Keras BN steps/s | fused BN steps/s | speed-up |")
  print("|---|---|---|---|")
  for variant in FLAGS.variants:
    steps = {"keras": _train_step_fn(variant, keras_bn=True),
             "fused": _train_step_fn(variant, keras_bn=False)}
    for step in steps.values():  # Trace and warm up.
      float(step(images, labels))
      float(step(images, labels))
    rates = {name: [] for name in steps}
    for _ in range(FLAGS.repeats):
      for name, step in steps.items():
        start = time.perf_counter()
        for _ in range(FLAGS.iters):
          loss = step(images, labels)
        float(loss)
        rates[name].append(FLAGS.iters / (time.perf_counter() - start))
    keras_rate = statistics.median(rates["keras"])
    fused_rate = statistics.median(rates["fused"])
    print(f"| {variant} | {keras_rate:.2f} | {fused_rate:.2f} | "
          f"{fused_rate / keras_rate:.2f}x |", flush=True)


if __name__ == "__main__":
  app.run(main)
