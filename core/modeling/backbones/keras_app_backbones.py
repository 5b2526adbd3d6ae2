"""Keras Applications' ResNet50/101 and Xception with atrous convolution.

These are the extra variants `resnet50`, `resnet101` and `xception`: the
Keras Applications architectures (which the Keras community DeepLab ports
use), with layer names kept, so that Keras' ImageNet weight files load into
them (`deeplab.core.modeling.import_weights.load_keras_h5`). They differ from the
official DeepLab variants:

* Keras ResNet strides in the first unit of a stage, in its 1x1 conv (and
  the 1x1 projection shortcut); DeepLab's resnet_v1 strides in the 3x3 conv
  of the last unit. Convs have biases; BN epsilon is 1.001e-5. Inputs are
  "caffe" preprocessed (BGR, ImageNet mean subtracted).
* Keras Xception is the original Xception (Chollet 2017): strided 3x3 max
  pools and 8 middle blocks, no BN+ReLU inside the separable convs; inputs
  in [-1, 1]. Its stem convs are unpadded, so a 513 input gives 16x16 at
  stride 32 (not 17).

Output stride: when the running stride reaches `output_stride`, a stage's
stride becomes 1 and the rate of every later 3x3 conv (and, in Xception,
of every later max pool: `layers.AtrousMaxPooling2D`) grows by the dropped
stride. For ResNet the dropped stride sits in a 1x1 conv, so the 3x3 conv of
that same unit already takes the new rate. Either way the dense output,
subsampled, equals the output at the nominal stride 32.
"""

from typing import Dict

import keras

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils

RESNET_STAGES = {
    "resnet50": (("conv2", 64, 3, 1), ("conv3", 128, 4, 2),
                 ("conv4", 256, 6, 2), ("conv5", 512, 3, 2)),
    "resnet101": (("conv2", 64, 3, 1), ("conv3", 128, 4, 2),
                  ("conv4", 256, 23, 2), ("conv5", 512, 3, 2)),
}

DECODER_ENDPOINTS = {
    "resnet50": {4: "conv2_block3_out", 8: "conv3_block4_out",
                 16: "conv4_block6_out"},
    "resnet101": {4: "conv2_block3_out", 8: "conv3_block4_out",
                  16: "conv4_block23_out"},
    "xception": {4: "block3_sepconv2_bn", 8: "block4_sepconv2_bn",
                 16: "block13_sepconv2_bn"},
}

# Keras Xception leaves its four shortcut convs and their BNs unnamed
# (`conv2d`, `batch_normalization`, ...); ours are named, in this order.
XCEPTION_SHORTCUTS = ("block2_shortcut", "block3_shortcut", "block4_shortcut",
                      "block13_shortcut")


def _regularizer(weight_decay):
  return deeplab_layers.l2_regularizer(weight_decay)


def build_keras_resnet(inputs: keras.KerasTensor,
                       name: str = "resnet50",
                       output_stride: int = 16,
                       batch_norm_momentum: float = 0.99,
                       weight_decay: float = 1e-4,
                       sync_batch_norm: bool = False
                       ) -> Dict[str, keras.KerasTensor]:
  """Adds Keras Applications' ResNet50/101 (v1) with atrous convolution.

  Args:
    inputs: Caffe-preprocessed images (BGR, ImageNet mean subtracted).
    name: `resnet50` or `resnet101`.
    output_stride: 8, 16 or 32.
    batch_norm_momentum: BatchNorm momentum.
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.

  Returns:
    Endpoints by Keras layer name: `conv1_relu`, `pool1_pool`, every
    `conv{s}_block{b}_out`, and `final` (conv5's last block, 2048 channels).

  Raises:
    ValueError: on an unknown name or bad output_stride.
  """
  if name not in RESNET_STAGES:
    raise ValueError(f"Unknown Keras ResNet {name!r}; known: "
                     f"{sorted(RESNET_STAGES)}.")
  backbone_utils.check_output_stride(output_stride)

  def conv(x, filters, kernel, stride, lname, rate=1, padding="valid"):
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, dilation_rate=rate, padding=padding,
        kernel_regularizer=_regularizer(weight_decay), name=lname)(x)

  def bn(x, lname):
    return deeplab_layers.batch_norm(lname, batch_norm_momentum, 1.001e-5,
                                     sync_batch_norm)(x)

  endpoints = {}
  # === Stem ===
  x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
  x = conv(x, 64, 7, 2, "conv1_conv")
  x = bn(x, "conv1_bn")
  x = keras.layers.Activation("relu", name="conv1_relu")(x)
  endpoints["conv1_relu"] = x
  x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
  x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
  endpoints["pool1_pool"] = x

  # === Stages ===
  current_stride, rate = 4, 1
  for stage, filters, blocks, stage_stride in RESNET_STAGES[name]:
    stride = stage_stride
    if stage_stride > 1 and current_stride == output_stride:
      stride, rate = 1, rate * stage_stride
    else:
      current_stride *= stage_stride
    for block in range(1, blocks + 1):
      prefix = f"{stage}_block{block}"
      block_stride = stride if block == 1 else 1
      if block == 1:
        shortcut = conv(x, 4 * filters, 1, block_stride, f"{prefix}_0_conv")
        shortcut = bn(shortcut, f"{prefix}_0_bn")
      else:
        shortcut = x
      y = conv(x, filters, 1, block_stride, f"{prefix}_1_conv")
      y = bn(y, f"{prefix}_1_bn")
      y = keras.layers.Activation("relu", name=f"{prefix}_1_relu")(y)
      y = conv(y, filters, 3, 1, f"{prefix}_2_conv", rate=rate, padding="same")
      y = bn(y, f"{prefix}_2_bn")
      y = keras.layers.Activation("relu", name=f"{prefix}_2_relu")(y)
      y = conv(y, 4 * filters, 1, 1, f"{prefix}_3_conv")
      y = bn(y, f"{prefix}_3_bn")
      x = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
      x = keras.layers.Activation("relu", name=f"{prefix}_out")(x)
      endpoints[f"{prefix}_out"] = x
  endpoints["final"] = x
  return endpoints


def build_keras_xception(inputs: keras.KerasTensor,
                         output_stride: int = 16,
                         batch_norm_momentum: float = 0.99,
                         batch_norm_epsilon: float = 1e-3,
                         weight_decay: float = 4e-5,
                         sync_batch_norm: bool = False
                         ) -> Dict[str, keras.KerasTensor]:
  """Adds Keras Applications' Xception with atrous convolution.

  Args:
    inputs: Images in [-1, 1].
    output_stride: 8, 16 or 32.
    batch_norm_momentum: BatchNorm momentum.
    batch_norm_epsilon: BatchNorm epsilon (Keras: 1e-3).
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.

  Returns:
    Endpoints by Keras layer name (`block1_conv2_act`, every
    `block{b}_sepconv{i}_bn`, `block{b}_out`) and `final`
    (`block14_sepconv2_act`, 2048 channels).

  Raises:
    ValueError: on a bad output_stride.
  """
  backbone_utils.check_output_stride(output_stride)
  endpoints = {}

  def bn(x, lname):
    x = deeplab_layers.batch_norm(lname, batch_norm_momentum,
                                  batch_norm_epsilon, sync_batch_norm)(x)
    endpoints[lname] = x
    return x

  def sepconv(x, filters, lname, rate):
    return keras.layers.SeparableConv2D(
        filters, 3, padding="same", dilation_rate=rate, use_bias=False,
        pointwise_regularizer=_regularizer(weight_decay), name=lname)(x)

  def relu(x, lname):
    return keras.layers.Activation("relu", name=lname)(x)

  # === Entry flow stem (unpadded, as Keras) ===
  x = keras.layers.Conv2D(32, 3, strides=2, use_bias=False,
                          kernel_regularizer=_regularizer(weight_decay),
                          name="block1_conv1")(inputs)
  x = relu(bn(x, "block1_conv1_bn"), "block1_conv1_act")
  x = keras.layers.Conv2D(64, 3, use_bias=False,
                          kernel_regularizer=_regularizer(weight_decay),
                          name="block1_conv2")(x)
  x = relu(bn(x, "block1_conv2_bn"), "block1_conv2_act")
  endpoints["block1_conv2_act"] = x

  current_stride, rate = 2, 1

  def strided_block(x, block, filters, shortcut_name):
    """Two sepconvs, a 3x3 max pool of stride 2, and a 1x1 shortcut."""
    nonlocal current_stride, rate
    if current_stride == output_stride:
      stride, pool_rate, next_rate = 1, rate, rate * 2
    else:
      stride, pool_rate, next_rate = 2, 1, rate
      current_stride *= 2
    shortcut = keras.layers.Conv2D(
        filters[1], 1, strides=stride, padding="same", use_bias=False,
        kernel_regularizer=_regularizer(weight_decay),
        name=shortcut_name)(x)
    shortcut = bn(shortcut, f"{shortcut_name}_bn")
    if block != 2:  # block2 follows block1_conv2_act: already rectified.
      x = relu(x, f"block{block}_sepconv1_act")
    x = sepconv(x, filters[0], f"block{block}_sepconv1", rate)
    x = bn(x, f"block{block}_sepconv1_bn")
    x = relu(x, f"block{block}_sepconv2_act")
    x = sepconv(x, filters[1], f"block{block}_sepconv2", rate)
    x = bn(x, f"block{block}_sepconv2_bn")
    if pool_rate == 1:
      x = keras.layers.MaxPooling2D(3, strides=stride, padding="same",
                                    name=f"block{block}_pool")(x)
    else:
      x = deeplab_layers.AtrousMaxPooling2D(3, pool_rate,
                                            name=f"block{block}_pool")(x)
    rate = next_rate
    x = keras.layers.Add(name=f"block{block}_out")([x, shortcut])
    endpoints[f"block{block}_out"] = x
    return x

  # === Entry flow ===
  x = strided_block(x, 2, (128, 128), XCEPTION_SHORTCUTS[0])
  x = strided_block(x, 3, (256, 256), XCEPTION_SHORTCUTS[1])
  x = strided_block(x, 4, (728, 728), XCEPTION_SHORTCUTS[2])
  # === Middle flow ===
  for block in range(5, 13):
    shortcut = x
    for i in (1, 2, 3):
      x = relu(x, f"block{block}_sepconv{i}_act")
      x = sepconv(x, 728, f"block{block}_sepconv{i}", rate)
      x = bn(x, f"block{block}_sepconv{i}_bn")
    x = keras.layers.Add(name=f"block{block}_out")([x, shortcut])
    endpoints[f"block{block}_out"] = x
  # === Exit flow ===
  x = strided_block(x, 13, (728, 1024), XCEPTION_SHORTCUTS[3])
  x = sepconv(x, 1536, "block14_sepconv1", rate)
  x = relu(bn(x, "block14_sepconv1_bn"), "block14_sepconv1_act")
  x = sepconv(x, 2048, "block14_sepconv2", rate)
  x = relu(bn(x, "block14_sepconv2_bn"), "block14_sepconv2_act")
  endpoints["final"] = x
  return endpoints

