"""Small reusable layers shared by the backbone, ASPP, decoder and model.

Everything here is Keras-serializable and registered under the `deeplab`
package, so a saved `.keras` model reloads without `custom_objects`.

The conv blocks reproduce the slim conventions of official DeepLab:
`slim.conv2d` with `normalizer_fn=batch_norm` (no bias, then BN, then ReLU),
`split_separable_conv2d` (depthwise + BN + ReLU, then pointwise + BN + ReLU),
and `slim.l2_regularizer(wd)`, which is `wd * sum(w**2) / 2`.
"""

import dataclasses
from typing import Any, Dict, Iterator, Optional

import keras
from keras import ops
import tensorflow as tf

from deeplab.core.modeling import batch_norm as batch_norm_lib

_PACKAGE = "deeplab"
# Activations of the conv blocks: official DeepLab's ReLU, or ReLU6 for
# `use_bounded_activation` (quantization).
ACTIVATIONS = ("relu", "relu6")


# BatchNorm epsilon of official DeepLab's heads: `model.extract_features`
# (ASPP, image pooling, concat projection) and `model.refine_by_decoder`
# build their batch norms with epsilon=1e-5, whatever the backbone uses
# (1e-3 for Xception and the MobileNets).
HEAD_BATCH_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class NormActivation:
  """BatchNorm and activation options shared by a network's conv blocks.

  Grouped once, as the Model Garden's `NormActivation`
  (official/vision/configs/common.py), instead of being repeated as
  keyword arguments through every builder.

  Attributes:
    momentum: BatchNorm moving-average momentum (slim `decay`).
    epsilon: BatchNorm epsilon.
    synchronized: Synchronize BatchNorm statistics across replicas.
    activation: `relu` (official) or `relu6` (`use_bounded_activation`).

  Example:
    >>> norm = NormActivation(momentum=0.9)
    >>> norm.for_head().epsilon
    1e-05
  """

  momentum: float = 0.9997
  epsilon: float = 1e-3
  synchronized: bool = False
  activation: str = "relu"

  def __post_init__(self):
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"Unknown activation {self.activation!r}; known: "
                       f"{list(ACTIVATIONS)}.")

  @classmethod
  def from_model_config(cls, config) -> "NormActivation":
    """The backbone's options from a `ModelConfig`."""
    return cls(momentum=config.batch_norm_momentum,
               epsilon=config.batch_norm_epsilon,
               synchronized=config.sync_batch_norm,
               activation="relu6" if config.use_bounded_activation else "relu")

  def replace(self, **changes) -> "NormActivation":
    return dataclasses.replace(self, **changes)

  def for_head(self) -> "NormActivation":
    """The same options with the heads' official epsilon (1e-5)."""
    return self.replace(epsilon=HEAD_BATCH_NORM_EPSILON)

  def batch_norm(self, name: str) -> keras.layers.BatchNormalization:
    """A BatchNorm layer with these options."""
    return batch_norm(name, self.momentum, self.epsilon, self.synchronized)

  def layer_kwargs(self) -> Dict[str, Any]:
    """These options as the conv blocks' (serialised) keyword arguments."""
    return {"batch_norm_momentum": self.momentum,
            "batch_norm_epsilon": self.epsilon,
            "sync_batch_norm": self.synchronized,
            "activation": self.activation}


# === Helpers ===


def l2_regularizer(weight_decay: float) -> Optional[keras.regularizers.L2]:
  """Returns slim's `l2_regularizer(weight_decay)` as a Keras regularizer.

  slim adds `weight_decay * sum(w**2) / 2`; Keras' `L2(l)` adds
  `l * sum(w**2)`, hence the halving. No regularizer when weight_decay is 0.
  """
  if not weight_decay:
    return None
  return keras.regularizers.L2(weight_decay / 2.0)


def batch_norm(name: str, momentum: float, epsilon: float,
               synchronized: bool = False) -> keras.layers.BatchNormalization:
  """BatchNormalization with scale and center, as slim's (fused) batch_norm.

  See `deeplab.core.modeling.batch_norm` for why it is not Keras's own layer.
  """
  return batch_norm_lib.FusedBatchNormalization(
      momentum=momentum, epsilon=epsilon, synchronized=synchronized,
      name=name)


def iter_batch_norm_layers(layer: keras.layers.Layer
                           ) -> Iterator[keras.layers.BatchNormalization]:
  """Yields every BatchNormalization inside `layer`, nested ones included."""
  for sub in layer._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
    if isinstance(sub, keras.layers.BatchNormalization):
      yield sub


def freeze_batch_norm(model: keras.layers.Layer) -> int:
  """Freezes every BatchNormalization in `model` (`fine_tune_batch_norm=False`).

  A Keras BatchNormalization with `trainable=False` normalises with its
  moving statistics and no longer updates them, whatever `training` says.
  Unlike slim (which still trained gamma and beta), it also stops training
  gamma and beta.

  Args:
    model: A model or layer.

  Returns:
    The number of layers frozen.
  """
  count = 0
  for bn in iter_batch_norm_layers(model):
    bn.trainable = False
    count += 1
  return count


@keras.saving.register_keras_serializable(package=_PACKAGE)
def hard_sigmoid(x):
  """`relu6(x + 3) * 0.16667`: official DeepLab's `q_sigmoid`
  (`core/utils.py`, quantizable), also slim MobileNetV3's squeeze-and-
  excitation gate. The one registration of `deeplab>hard_sigmoid`."""
  return ops.relu6(x + 3.0) * 0.16667


@keras.saving.register_keras_serializable(package=_PACKAGE)
def clip_6(x):
  """Clips to [-6, 6]: official Xception's `use_bounded_activation` cap on
  linear (pre-add) outputs, so that every tensor has a bounded range."""
  return ops.clip(x, -6.0, 6.0)


def _int_or_pair(value):
  """An int, or a list of two ints when they differ (serialisable rates)."""
  if isinstance(value, (list, tuple)):
    pair = [int(v) for v in value]
    if len(pair) != 2:
      raise ValueError(f"Expected an int or two ints, got {value!r}.")
    return pair[0] if pair[0] == pair[1] else pair
  return int(value)


def resize_bilinear(images: tf.Tensor, size) -> tf.Tensor:
  """TF1 `resize_bilinear(..., align_corners=True)`, as official DeepLab
  resizes features, images and logits (`utils.resize_bilinear`).

  TF2's `tf.image.resize` has no align_corners; the raw op does (and
  converts to TFLite's RESIZE_BILINEAR with align_corners).
  """
  return tf.raw_ops.ResizeBilinear(images=images, size=size,
                                   align_corners=True,
                                   half_pixel_centers=False)


# === Layers ===


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResizeBilinear(keras.layers.Layer):
  """Bilinearly resizes `x` to the spatial size of `reference`.

  Called as `layer([x, reference])`. Works with dynamic spatial sizes, which
  `keras.ops.image.resize` (static `size` only) cannot, hence the TF op.

  Official DeepLab resizes with `align_corners=True` everywhere (ASPP image
  pooling, decoder, logits). With the 'SAME'-padded strides of the
  backbones, feature pixel `i` at stride `s` sits over input pixel `s * i`
  for inputs of size `s * k + 1` (e.g. 513), which is exactly the
  align-corners grid.

  Args:
    align_corners: Align the corner pixels of input and output (official
      DeepLab) instead of half-pixel centres.
  """

  def __init__(self, align_corners: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.align_corners = align_corners

  def call(self, inputs):
    x, reference = inputs
    size = tf.shape(reference)[1:3]
    if self.align_corners:
      y = resize_bilinear(x, size)
    else:
      y = tf.image.resize(x, size, method="bilinear")
    y = ops.cast(y, self.compute_dtype)
    # Keep whatever static shape is known (the TF op loses it).
    y.set_shape(self.compute_output_shape([x.shape, reference.shape]))
    return y

  def compute_output_shape(self, input_shape):
    x_shape, reference_shape = input_shape
    return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])

  def get_config(self):
    config = super().get_config()
    config.update({"align_corners": self.align_corners})
    return config


PREPROCESSING_MODES = ("zero_mean_unit_range", "imagenet_mean", "caffe")
# The pixel that `zero_mean_unit_range` maps to 0 ([-1, 1] variants).
UNIT_RANGE_MEAN_RGB = (127.5, 127.5, 127.5)
# ImageNet mean RGB that official DeepLab subtracts for non-beta ResNets.
IMAGENET_MEAN_RGB = (123.15, 115.90, 103.06)
# Keras Applications' "caffe" mode (ResNet50/101): RGB -> BGR, then this
# mean (given in RGB order here) is subtracted.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


def scale_dimension(dim: int, scale: float) -> int:
  """Official `utils.scale_dimension` on an int: int((dim - 1) * scale + 1)."""
  return int((float(dim) - 1.0) * scale + 1.0)


def image_pooling_window(crop_size, output_stride: int, scale: float = 1.0):
  """Official image-pooling window in feature pixels: the pooling crop,
  scaled with the image (`multi_scale_logits`), at 1 / output_stride."""
  return tuple(scale_dimension(scale_dimension(c, scale), 1.0 / output_stride)
               for c in crop_size)


def mean_pixel_of(mode: str):
  """The RGB pixel that preprocessing `mode` maps to 0."""
  if mode == "imagenet_mean":
    return IMAGENET_MEAN_RGB
  if mode == "caffe":
    return CAFFE_MEAN_RGB
  return UNIT_RANGE_MEAN_RGB


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ImagePreprocessing(keras.layers.Layer):
  """Maps raw pixels (0..255) to the range a backbone was trained on.

  Living inside the model, it lets exported models take raw pixels.

  Args:
    mode: `zero_mean_unit_range` (x / 127.5 - 1, official
      `_preprocess_zero_mean_unit_range`), `imagenet_mean`
      (x - [123.15, 115.90, 103.06], official
      `_preprocess_subtract_imagenet_mean`) or `caffe` (Keras
      Applications' ResNet: x - [123.68, 116.779, 103.939], then RGB ->
      BGR).
  """

  def __init__(self, mode: str = "zero_mean_unit_range", **kwargs):
    super().__init__(**kwargs)
    if mode not in PREPROCESSING_MODES:
      raise ValueError(
          f"Unknown preprocessing {mode!r}; known: {list(PREPROCESSING_MODES)}.")
    self.mode = mode

  def call(self, inputs):
    x = ops.cast(inputs, self.compute_dtype)
    if self.mode == "zero_mean_unit_range":
      return x * (2.0 / 255.0) - 1.0
    if self.mode == "caffe":
      x = x - ops.convert_to_tensor(CAFFE_MEAN_RGB, self.compute_dtype)
      return ops.flip(x, axis=-1)
    return x - ops.convert_to_tensor(IMAGENET_MEAN_RGB, self.compute_dtype)

  @property
  def mean_pixel(self):
    """The RGB pixel this preprocessing maps to 0: what images are padded
    with (official `feature_extractor.mean_pixel`)."""
    return mean_pixel_of(self.mode)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"mode": self.mode})
    return config


class _NormalizedConvBase(keras.layers.Layer):
  """Holds the BatchNorm and weight-decay options of the conv blocks."""

  def __init__(self,
               filters: int,
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = 1e-3,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               activation: str = "relu",
               **kwargs):
    super().__init__(**kwargs)
    if activation not in ACTIVATIONS:
      raise ValueError(f"Unknown activation {activation!r}; known: "
                       f"{list(ACTIVATIONS)}.")
    self.activation = activation
    self.filters = int(filters)
    self.batch_norm_momentum = batch_norm_momentum
    self.batch_norm_epsilon = batch_norm_epsilon
    self.weight_decay = weight_decay
    self.sync_batch_norm = sync_batch_norm

  def _batch_norm(self, name):
    return batch_norm(name, self.batch_norm_momentum, self.batch_norm_epsilon,
                      self.sync_batch_norm)

  def _activate(self, x):
    return ops.relu6(x) if self.activation == "relu6" else ops.relu(x)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.filters,)

  def get_config(self):
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "batch_norm_momentum": self.batch_norm_momentum,
        "batch_norm_epsilon": self.batch_norm_epsilon,
        "weight_decay": self.weight_decay,
        "sync_batch_norm": self.sync_batch_norm,
        "activation": self.activation,
    })
    return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvBNReLU(_NormalizedConvBase):
  """Conv (no bias) + BatchNorm + ReLU: slim.conv2d with batch_norm.

  Args:
    filters: Output channels.
    kernel_size: Square kernel size.
    dilation_rate: Atrous rate.
    kernel_initializer: Initializer of the kernel (slim's default is
      Glorot uniform, i.e. xavier).
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon.
    weight_decay: Slim-convention L2 weight decay on the kernel.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    activation: `relu` (official) or `relu6` (bounded, for quantization).
  """

  def __init__(self,
               filters: int,
               kernel_size: int = 1,
               dilation_rate: int = 1,
               kernel_initializer="glorot_uniform",
               **kwargs):
    super().__init__(filters, **kwargs)
    self.kernel_size = int(kernel_size)
    self.dilation_rate = int(dilation_rate)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.conv = keras.layers.Conv2D(
        self.filters, self.kernel_size, padding="same",
        dilation_rate=self.dilation_rate, use_bias=False,
        kernel_initializer=self.kernel_initializer,
        kernel_regularizer=l2_regularizer(self.weight_decay), name="conv")
    self.bn = self._batch_norm("bn")

  def build(self, input_shape):
    self.conv.build(input_shape)
    self.bn.build(self.conv.compute_output_shape(input_shape))
    self.built = True

  def call(self, inputs, training=None):
    return self._activate(self.bn(self.conv(inputs), training=training))

  def get_config(self):
    config = super().get_config()
    config.update({
        "kernel_size": self.kernel_size,
        "dilation_rate": self.dilation_rate,
        "kernel_initializer":
            keras.initializers.serialize(self.kernel_initializer),
    })
    return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SplitSeparableConv2D(_NormalizedConvBase):
  """DeepLab's `split_separable_conv2d`: a 3x3 separable conv with BN+ReLU
  after both the depthwise and the pointwise part.

  Unlike `keras.layers.SeparableConv2D`, BN and ReLU sit between the
  depthwise and pointwise convs. As in official DeepLab, the depthwise
  kernel (truncated normal, stddev 0.33) is not weight-decayed; the
  pointwise kernel (truncated normal, stddev 0.06) is.

  Args:
    filters: Output channels of the pointwise conv.
    dilation_rate: Atrous rate of the depthwise conv, or (rate_height,
      rate_width) (the dense prediction cell's rates, e.g. [18, 15]).
    kernel_size: Depthwise kernel size.
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon.
    weight_decay: Slim-convention L2 weight decay on the pointwise kernel.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    activation: `relu` (official) or `relu6` (bounded, for quantization).
    quant_friendly: Depthwise conv with bias and no BN or activation
      after it (Sheng et al. 2018, quantization-friendly separable conv).
  """

  def __init__(self,
               filters: int,
               dilation_rate: int = 1,
               kernel_size: int = 3,
               quant_friendly: bool = False,
               **kwargs):
    super().__init__(filters, **kwargs)
    self.dilation_rate = _int_or_pair(dilation_rate)
    self.kernel_size = int(kernel_size)
    self.quant_friendly = bool(quant_friendly)
    self.depthwise = keras.layers.DepthwiseConv2D(
        self.kernel_size, padding="same", dilation_rate=self.dilation_rate,
        use_bias=self.quant_friendly,
        depthwise_initializer=keras.initializers.TruncatedNormal(stddev=0.33),
        name="depthwise")
    if not self.quant_friendly:
      self.depthwise_bn = self._batch_norm("depthwise_bn")
    self.pointwise = keras.layers.Conv2D(
        self.filters, 1, use_bias=False,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.06),
        kernel_regularizer=l2_regularizer(self.weight_decay),
        name="pointwise")
    self.pointwise_bn = self._batch_norm("pointwise_bn")

  def build(self, input_shape):
    self.depthwise.build(input_shape)
    if not self.quant_friendly:
      self.depthwise_bn.build(input_shape)
    self.pointwise.build(input_shape)
    self.pointwise_bn.build(self.compute_output_shape(input_shape))
    self.built = True

  def call(self, inputs, training=None):
    x = self.depthwise(inputs)
    if not self.quant_friendly:
      # Quantization-friendly separable convs (Sheng et al. 2018) drop the
      # BN and activation between depthwise and pointwise.
      x = self._activate(self.depthwise_bn(x, training=training))
    return self._activate(self.pointwise_bn(self.pointwise(x),
                                            training=training))

  def get_config(self):
    config = super().get_config()
    config.update({
        "dilation_rate": self.dilation_rate,
        "kernel_size": self.kernel_size,
        "quant_friendly": self.quant_friendly,
    })
    return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AtrousMaxPooling2D(keras.layers.Layer):
  """Stride-1 max pooling over a dilated window ('SAME' padding).

  Where a backbone's strided max pool sits past the output stride, its
  stride becomes 1 and, like the convs after it, its window must be
  dilated by the rate so that the dense output, subsampled, equals the
  strided one (Keras Xception at output stride 8). Keras' MaxPooling2D has
  no dilation, hence `tf.nn.pool`.

  Args:
    pool_size: Square window size.
    dilation_rate: Spacing of the window's taps.
  """

  def __init__(self, pool_size: int = 3, dilation_rate: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.pool_size = int(pool_size)
    self.dilation_rate = int(dilation_rate)

  def call(self, inputs):
    # tf.nn.pool has no dilated 'SAME' mode: pad with the dtype's lowest
    # value (never the maximum), then pool 'VALID'.
    total = (self.pool_size - 1) * self.dilation_rate
    begin = total // 2
    padding = [[0, 0], [begin, total - begin], [begin, total - begin], [0, 0]]
    x = tf.pad(inputs, padding, constant_values=inputs.dtype.min)
    return tf.nn.pool(x, [self.pool_size] * 2, "MAX", padding="VALID",
                      dilations=[self.dilation_rate] * 2)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({"pool_size": self.pool_size,
                   "dilation_rate": self.dilation_rate})
    return config
