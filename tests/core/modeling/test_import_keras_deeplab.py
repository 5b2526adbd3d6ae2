"""Importing keras-deeplab-v3-plus (bonlime) weight files into our models.

That project's `model.py` (`Deeplabv3`) builds DeepLabv3+ in tf.keras and
ships `deeplabv3_xception_tf_dim_ordering_tf_kernels.h5` and
`deeplabv3_mobilenetv2_tf_dim_ordering_tf_kernels.h5`, converted from the
official checkpoints. The released files are large and not reachable
offline, so each test builds that network here, from its published
architecture (layer names, padding, BatchNorm epsilons: 1e-3 in the
backbone, 1e-5 in ASPP and the decoder; input scaled to [-1, 1]), with
random weights, writes them with h5py in the legacy Keras HDF5 layout the
released files use, imports them with `import_weights`, and compares the
logits.

Input sizes are odd and chosen so that the seed's fixed decoder upsampling
(x OS/4) lands on the low-level feature's size; see docs/import_weights.md
for why other sizes differ.
"""

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import import_weights

L = keras.layers


# === The seed's network, rebuilt (random weights) ===


def _resize(x, size):
  """Bilinear resize with align_corners, as the seed (tf.compat.v1)."""
  return L.Lambda(lambda t: tf.raw_ops.ResizeBilinear(
      images=t, size=size, align_corners=True))(x)


def _sep_conv_bn(x, filters, prefix, stride=1, rate=1, depth_activation=False,
                 epsilon=1e-3):
  if stride == 1:
    padding = "same"
  else:
    pad = (3 + 2 * (rate - 1) - 1)
    x = L.ZeroPadding2D((pad // 2, pad - pad // 2))(x)
    padding = "valid"
  if not depth_activation:
    x = L.Activation("relu")(x)
  x = L.DepthwiseConv2D(3, strides=stride, dilation_rate=rate,
                        padding=padding, use_bias=False,
                        name=prefix + "_depthwise")(x)
  x = L.BatchNormalization(name=prefix + "_depthwise_BN", epsilon=epsilon)(x)
  if depth_activation:
    x = L.Activation("relu")(x)
  x = L.Conv2D(filters, 1, use_bias=False, name=prefix + "_pointwise")(x)
  x = L.BatchNormalization(name=prefix + "_pointwise_BN", epsilon=epsilon)(x)
  if depth_activation:
    x = L.Activation("relu")(x)
  return x


def _xception_block(x, depths, prefix, skip, stride, rate=1,
                    depth_activation=False):
  residual, low_level = x, None
  for i in range(3):
    residual = _sep_conv_bn(residual, depths[i],
                            f"{prefix}_separable_conv{i + 1}",
                            stride=stride if i == 2 else 1, rate=rate,
                            depth_activation=depth_activation)
    if i == 1:
      low_level = residual
  if skip == "conv":
    shortcut = L.Conv2D(depths[-1], 1, strides=stride, use_bias=False,
                        name=prefix + "_shortcut")(x)
    shortcut = L.BatchNormalization(name=prefix + "_shortcut_BN")(shortcut)
    residual = L.Add()([residual, shortcut])
  elif skip == "sum":
    residual = L.Add()([residual, x])
  return residual, low_level


def _seed_xception_features(inputs):
  """Xception-65 at output stride 16; returns (features, low-level)."""
  x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False,
               name="entry_flow_conv1_1")(inputs)
  x = L.Activation("relu")(L.BatchNormalization(
      name="entry_flow_conv1_1_BN")(x))
  x = L.Conv2D(64, 3, padding="same", use_bias=False,
               name="entry_flow_conv1_2")(x)
  x = L.Activation("relu")(L.BatchNormalization(
      name="entry_flow_conv1_2_BN")(x))
  x, _ = _xception_block(x, [128] * 3, "entry_flow_block1", "conv", 2)
  x, low_level = _xception_block(x, [256] * 3, "entry_flow_block2", "conv", 2)
  x, _ = _xception_block(x, [728] * 3, "entry_flow_block3", "conv", 2)
  for i in range(16):
    x, _ = _xception_block(x, [728] * 3, f"middle_flow_unit_{i + 1}", "sum", 1)
  x, _ = _xception_block(x, [728, 1024, 1024], "exit_flow_block1", "conv", 1)
  x, _ = _xception_block(x, [1536, 1536, 2048], "exit_flow_block2", "none", 1,
                         rate=2, depth_activation=True)
  return x, low_level


def _inverted_residual(x, expansion, stride, filters, block_id, skip, rate=1):
  prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
  inputs = x
  if block_id:
    x = L.Conv2D(expansion * x.shape[-1], 1, use_bias=False,
                 name=prefix + "expand")(x)
    x = L.ReLU(6.0)(L.BatchNormalization(epsilon=1e-3,
                                         name=prefix + "expand_BN")(x))
  x = L.DepthwiseConv2D(3, strides=stride, dilation_rate=rate, padding="same",
                        use_bias=False, name=prefix + "depthwise")(x)
  x = L.ReLU(6.0)(L.BatchNormalization(epsilon=1e-3,
                                       name=prefix + "depthwise_BN")(x))
  x = L.Conv2D(filters, 1, use_bias=False, name=prefix + "project")(x)
  x = L.BatchNormalization(epsilon=1e-3, name=prefix + "project_BN")(x)
  return L.Add()([inputs, x]) if skip else x


# (filters, stride, rate, residual) of blocks 1..16; output stride 8.
_MOBILENET_BLOCKS = (
    (24, 2, 1, False), (24, 1, 1, True), (32, 2, 1, False), (32, 1, 1, True),
    (32, 1, 1, True), (64, 1, 1, False), (64, 1, 2, True), (64, 1, 2, True),
    (64, 1, 2, True), (96, 1, 2, False), (96, 1, 2, True), (96, 1, 2, True),
    (160, 1, 2, False), (160, 1, 4, True), (160, 1, 4, True),
    (320, 1, 4, False))


def _seed_mobilenet_features(inputs):
  x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False,
               name="Conv")(inputs)
  x = L.ReLU(6.0)(L.BatchNormalization(epsilon=1e-3, name="Conv_BN")(x))
  x = _inverted_residual(x, 1, 1, 16, 0, False)
  for block_id, (filters, stride, rate, skip) in enumerate(_MOBILENET_BLOCKS,
                                                           start=1):
    x = _inverted_residual(x, 6, stride, filters, block_id, skip, rate)
  return x


def _conv_bn_relu(x, filters, name):
  x = L.Conv2D(filters, 1, use_bias=False, name=name)(x)
  return L.Activation("relu")(L.BatchNormalization(epsilon=1e-5,
                                                   name=name + "_BN")(x))


def build_seed_model(backbone: str, size: int, classes: int = 21):
  """The seed's `Deeplabv3(backbone=..., OS=16)` on a [size, size] input."""
  inputs = keras.Input((size, size, 3))
  if backbone == "xception":
    x, low_level = _seed_xception_features(inputs)
  else:
    x, low_level = _seed_mobilenet_features(inputs), None
  pooled = L.GlobalAveragePooling2D(keepdims=True)(x)
  pooled = _resize(_conv_bn_relu(pooled, 256, "image_pooling"), x.shape[1:3])
  branches = [pooled, _conv_bn_relu(x, 256, "aspp0")]
  if backbone == "xception":
    branches += [_sep_conv_bn(x, 256, f"aspp{i + 1}", rate=rate,
                              depth_activation=True, epsilon=1e-5)
                 for i, rate in enumerate((6, 12, 18))]
  x = _conv_bn_relu(L.Concatenate()(branches), 256, "concat_projection")
  if backbone == "xception":
    # The seed upsamples by OS // 4 = 4, not to the low-level size.
    x = _resize(x, (x.shape[1] * 4, x.shape[2] * 4))
    x = L.Concatenate()([x, _conv_bn_relu(low_level, 48,
                                          "feature_projection0")])
    for i in range(2):
      x = _sep_conv_bn(x, 256, f"decoder_conv{i}", depth_activation=True,
                       epsilon=1e-5)
  x = L.Conv2D(classes, 1, name="logits_semantic")(x)
  return keras.Model(inputs, _resize(x, (size, size)))


# === Random weights, in the released files' layout ===


def randomize(model, images, seed=0):
  """Random kernels; BatchNorm statistics of `images`; random gamma/beta."""
  rng = np.random.default_rng(seed)
  norms = [l for l in model.layers if isinstance(l, L.BatchNormalization)]
  for layer in model.layers:
    if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D)):
      kernel = layer.weights[0]
      fan_in = np.prod(kernel.shape[:-1]) if isinstance(
          layer, L.Conv2D) and not isinstance(
              layer, L.DepthwiseConv2D) else np.prod(kernel.shape[:2])
      kernel.assign(rng.normal(0, np.sqrt(2 / fan_in), kernel.shape))
      if layer.use_bias:
        layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
  for layer in norms:
    layer.momentum = 0.0
  model(images, training=True)  # Moving statistics := batch statistics.
  for layer in norms:
    layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
    layer.beta.assign(rng.normal(0, 0.2, layer.beta.shape))
  return model


def write_legacy_h5(model, path):
  """`model.save_weights` of tf.keras 2 (HDF5): layer_names, weight_names."""
  with h5py.File(path, "w") as f:
    names = [l.name for l in model.layers if l.weights]
    f.attrs["layer_names"] = [n.encode() for n in names]
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.2.4"
    for layer in model.layers:
      if not layer.weights:
        continue
      group = f.create_group(layer.name)
      # tf.keras 2 names a depthwise kernel `depthwise_kernel` (Keras 3:
      # `kernel`).
      short = ["depthwise_kernel" if isinstance(layer, L.DepthwiseConv2D) and
               w.name == "kernel" else w.name for w in layer.weights]
      weight_names = [f"{layer.name}/{n}:0" for n in short]
      group.attrs["weight_names"] = [n.encode() for n in weight_names]
      for name, weight in zip(weight_names, layer.weights):
        group.create_dataset(name, data=weight.numpy())


def _check_import(tmp_path, backbone, size, our_config):
  keras.utils.set_random_seed(0)
  images = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3))
  images = images.astype(np.float32)
  seed_model = randomize(build_seed_model(backbone, size),
                         images / 127.5 - 1.0)
  path = str(tmp_path / f"deeplabv3_{backbone}_tf_dim_ordering_tf_kernels.h5")
  write_legacy_h5(seed_model, path)
  assert import_weights.is_keras_deeplab_h5(path)

  ours = deeplab_model.build_deeplab_model(our_config)
  report = import_weights.import_weights(ours, path)
  assert not report.missing, report.missing[:5]
  assert not report.mismatched, report.mismatched[:5]
  assert not report.unused, report.unused[:5]
  assert len(report.matched) == len(ours.weights)

  expected = seed_model(images / 127.5 - 1.0).numpy()
  got = ours(images).numpy()
  scale = np.abs(expected).max()
  assert scale > 1.0
  np.testing.assert_allclose(got, expected, atol=1e-4 * scale)
  assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.999


def test_mobilenetv2_h5_imports_and_matches(tmp_path):
  """mobilenetv2 seed: OS 8, ASPP lite (pooling + 1x1), no decoder."""
  _check_import(tmp_path, "mobilenetv2", 33, config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=21, output_stride=8,
      decoder_output_stride=None))


@pytest.mark.slow
def test_xception_h5_imports_and_matches(tmp_path):
  """xception seed: Xception-65, OS 16, ASPP (6, 12, 18), decoder at 4."""
  _check_import(tmp_path, "xception", 61, config_lib.ModelConfig(
      model_variant="xception_65", num_classes=21, output_stride=16,
      atrous_rates=(6, 12, 18), decoder_output_stride=4))


def test_keras_applications_h5_is_not_taken_for_a_seed_file(tmp_path):
  path = str(tmp_path / "app.h5")
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [b"Conv1", b"bn_Conv1"]
  assert not import_weights.is_keras_deeplab_h5(path)
