"""Helpers for backbone tests: cached builds, shared weights, atrous checks."""

import functools

import keras
import numpy as np

from deeplab.core import config as config_lib
from deeplab.core.modeling import model_variants

# 33 = 32 + 1 stays odd at every stride (17, 9, 5, 3, 2), so 'SAME'-padded
# strided layers sample input pixel stride * i, as official tests require.
SIZE = 33


def side(size, stride):
  """'SAME'-padded feature size: ceil at every halving."""
  for _ in range(int(np.log2(stride))):
    size = -(-size // 2)
  return size


@functools.lru_cache(maxsize=None)
def backbone(variant_name, output_stride, size=SIZE, multi_grid=None):
  """A model mapping preprocessed images to the variant's endpoints
  `final`, its decoder endpoints and `aux` (its auxiliary-head endpoint)
  (cached: build once per test session)."""
  variant = model_variants.get_model_variant(variant_name)
  config = config_lib.ModelConfig(model_variant=variant_name,
                                  output_stride=output_stride,
                                  multi_grid=multi_grid)
  inputs = keras.Input((size, size, 3))
  endpoints = variant.backbone_builder(inputs, config)
  names = {"final": "final"}
  names.update({f"decoder_{k}": v for k, v in
                variant.decoder_endpoints.items()})
  if variant.aux_endpoint:
    names["aux"] = variant.aux_endpoint
  return keras.Model(inputs, {k: endpoints[v] for k, v in names.items()})


def _randomize_batch_norm_layer(layer, rng):
  gamma, beta, mean, var = layer.get_weights()
  layer.set_weights([
      rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
      rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])


def randomize_batch_norm(model, seed=0):
  """Non-trivial BatchNorm statistics (in place), so that inference mode is
  really tested."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      _randomize_batch_norm_layer(layer, rng)
  return model


def randomize(model, seed=0):
  """Random kernels and non-trivial BatchNorm statistics (in place)."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      _randomize_batch_norm_layer(layer, rng)
    else:
      weights = layer.get_weights()
      if weights:
        layer.set_weights([
            rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[:-1])), w.shape)
            for w in weights])
  return model


def copy_weights(source, target):
  """Copies weights layer by layer, by name (same architecture)."""
  for layer in target.layers:
    weights = layer.get_weights()
    if weights:
      layer.set_weights(source.get_layer(layer.name).get_weights())


def images(size=SIZE, seed=1):
  return np.random.default_rng(seed).uniform(
      -1, 1, (1, size, size, 3)).astype("float32")


def assert_atrous_equivalent(dense, nominal, output_stride, x):
  """Dense features at `output_stride`, subsampled, equal those at 32."""
  factor = 32 // output_stride
  expected = nominal(x)["final"].numpy()
  actual = dense(x)["final"].numpy()[:, ::factor, ::factor]
  scale = np.abs(expected).max()
  assert scale > 1e-3  # Not a trivially-zero comparison.
  np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)
