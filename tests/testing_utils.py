"""Helpers shared by tests (importable because pytest.ini adds tests/ to the path)."""

import numpy as np

from deeplab.core import layers as deeplab_layers


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
  kernel = model.get_layer("logits").kernel
  kernel.assign(rng.normal(0, 1.0, kernel.shape).astype(np.float32))
  return model
