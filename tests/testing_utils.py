"""Helpers shared by tests (importable because pytest.ini adds tests/ to the path)."""

import os
import subprocess
import sys

import keras
import numpy as np

from deeplab.core.modeling import layers as deeplab_layers


def randomize_weights(model, seed: int = 0, scale: float = 0.3):
  """Gives every weight a random value (for checkpoint round trips)."""
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    if "moving_variance" in weight.path:
      continue
    weight.assign(rng.normal(0, scale, weight.shape).astype(np.float32))
  return model


def make_predictions_nontrivial(model, images, seed: int = 0):
  """Makes an untrained model's labels vary clearly from pixel to pixel.

  A freshly initialised network has BatchNorm statistics of (0, 1), so its
  activations shrink layer by layer and its logits differ by ~1e-9, where
  any float difference flips the argmax. Setting every BatchNorm's moving
  statistics to those of `images` and drawing a random logits kernel gives
  well-separated logits, so label comparisons test something.
  """
  norms = list(deeplab_layers.iter_batch_norm_layers(model))
  momenta = [l.momentum for l in norms]
  for layer in norms:
    layer.momentum = 0.0
  model(np.asarray(images, np.float32), training=True)
  for layer, momentum in zip(norms, momenta):
    layer.momentum = momentum
  rng = np.random.default_rng(seed)
  logits = model.get_layer("logits")
  kernel = rng.normal(0, 1.0, logits.kernel.shape).astype(np.float32)
  # Standardise each class's logit over the pixels of `images`, so no class
  # dominates everywhere whatever the (unseeded) backbone weights are.
  features = keras.Model(model.inputs, logits.input)(
      np.asarray(images, np.float32), training=False).numpy()
  scores = features.reshape(-1, kernel.shape[-2]) @ kernel.reshape(
      kernel.shape[-2], -1)
  mean, std = scores.mean(0), scores.std(0) + 1e-12
  logits.kernel.assign((kernel / std).astype(np.float32))
  logits.bias.assign((-mean / std).astype(np.float32))
  return model


# === Running the absl apps as a user does ===

# Flags of a small, fast DeepLab on the demo dataset.
DEMO_MODEL_FLAGS = ("--dataset=demo", "--model_variant=mobilenet_v2",
                    "--output_stride=16", "--decoder_output_stride=4",
                    "--depth_multiplier=0.35", "--batch_norm_decay=0.9")
APP_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def run_app(module: str, *args, timeout: float = 400):
  """Runs `python -m deeplab.<module> args...` and returns the result."""
  return subprocess.run([sys.executable, "-m", f"deeplab.{module}", *args],
                        capture_output=True, text=True, timeout=timeout,
                        env=APP_ENV, check=False)


def assert_clear_error(result, *needles):
  """The app failed with one `ERROR:` line (no traceback) naming `needles`."""
  assert result.returncode != 0
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("ERROR:"), result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  for needle in needles:
    assert needle in last_line, last_line


def build_demo_tfrecords(root, num_train: int = 16, num_val: int = 4,
                         image_size: int = 64, seed: int = 3):
  """A small demo dataset under `root/voc`, built into `root/tfrecord`."""
  from deeplab.datasets import build_demo_data  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import build_voc2012_data  # pylint: disable=g-import-not-at-top
  voc = os.path.join(str(root), "voc")
  build_demo_data.generate_demo_dataset(voc, num_train=num_train,
                                        num_val=num_val,
                                        image_size=image_size, seed=seed)
  build_voc2012_data.build_voc_dataset(
      image_folder=os.path.join(voc, "JPEGImages"),
      semantic_segmentation_folder=os.path.join(voc, "SegmentationClass"),
      list_folder=os.path.join(voc, "ImageSets", "Segmentation"),
      output_dir=os.path.join(str(root), "tfrecord"), num_shards=2)
  return root
