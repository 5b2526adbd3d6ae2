"""The DeepLabv3+ decoder (Chen et al., ECCV 2018, Sec. 3.1, Fig. 2).

Reproduces official DeepLab's `model.refine_by_decoder` for one low-level
feature: project the low-level feature to 48 channels, upsample the encoder
output to its size, concatenate, and refine with two 3x3 convs.
"""

import keras
from keras import ops

from deeplab.core.modeling import layers as deeplab_layers


@keras.saving.register_keras_serializable(package="deeplab")
class DeepLabV3PlusDecoder(keras.layers.Layer):
  """Fuses the ASPP output with a low-level backbone feature.

  Called as `decoder([encoder_features, low_level_features])`; the output
  has the low-level feature's spatial size and `filters` channels.

  Steps (official scope names in brackets):

  1. Low-level feature -> 1x1 conv + BN + ReLU to `low_level_filters`
     channels (`feature_projection0`).
  2. Encoder features -> bilinear resize (align corners, as official) to
     the low-level feature's dynamic size. Official DeepLab resizes both
     tensors to `scale_dimension(crop, 1 / decoder_output_stride)`, which
     equals the low-level feature's 'SAME'-padded size, so only the encoder
     features need resizing.
  3. Concatenate [encoder, low-level] (official order).
  4. `num_convs` 3x3 convs of `filters` channels (`decoder_conv0`,
     `decoder_conv1`), DeepLab split separable convs by default.

  Args:
    filters: Channels of the 3x3 convs (256).
    low_level_filters: Channels of the low-level projection (48).
    use_separable_conv: Split separable (official default) or regular 3x3
      convs.
    num_convs: Number of 3x3 convs (2).
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon (1e-5: official model.py builds
      every head batch norm so, whatever the backbone uses).
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    align_corners: Resize mode of the encoder upsampling.
    sum_merge: Official `decoder_use_sum_merge` (MobileNetV3 head): project
      the low-level feature to `filters`, pass the upsampled encoder
      features through one conv (`decoder_split_sep_conv0` or
      `decoder_conv0`), and add them.
    output_is_logits: Official `decoder_output_is_logits`: both convs are
      1x1 with biases and no BN or activation; `filters` must be the
      number of classes and the output is the logits.
    activation: `relu` or `relu6` (official `use_bounded_activation`).
    quant_friendly: Separable convs without BN after the depthwise conv.

  Example:
    >>> encoder = keras.Input((None, None, 256))
    >>> low_level = keras.Input((None, None, 144))
    >>> DeepLabV3PlusDecoder(name="decoder")([encoder, low_level]).shape
    (None, None, None, 256)
  """

  def __init__(self,
               filters: int = 256,
               low_level_filters: int = 48,
               use_separable_conv: bool = True,
               num_convs: int = 2,
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = deeplab_layers.HEAD_BATCH_NORM_EPSILON,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               align_corners: bool = True,
               sum_merge: bool = False,
               output_is_logits: bool = False,
               activation: str = "relu",
               quant_friendly: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.sum_merge = bool(sum_merge or output_is_logits)
    self.output_is_logits = bool(output_is_logits)
    self.activation = activation
    self.quant_friendly = bool(quant_friendly)
    if self.sum_merge:
      # Official: "the projected filters must be equal to decoder filters",
      # and a single conv.
      low_level_filters = filters
      num_convs = 1
    self.low_level_filters = int(low_level_filters)
    self.use_separable_conv = use_separable_conv
    self.num_convs = int(num_convs)
    if self.num_convs < 1:
      raise ValueError(f"num_convs must be at least 1, got {num_convs}.")
    self.batch_norm_momentum = batch_norm_momentum
    self.batch_norm_epsilon = batch_norm_epsilon
    self.weight_decay = weight_decay
    self.sync_batch_norm = sync_batch_norm
    self.align_corners = align_corners

    # === Layers ===
    common = dict(
        batch_norm_momentum=batch_norm_momentum,
        batch_norm_epsilon=batch_norm_epsilon,
        weight_decay=weight_decay,
        sync_batch_norm=sync_batch_norm,
        activation=activation)
    if self.output_is_logits:
      # Official `decoder_output_is_logits`: plain 1x1 convs with biases,
      # no BN or activation; their sum is the logits.
      def plain(name):
        return keras.layers.Conv2D(
            self.filters, 1, use_bias=True,
            kernel_regularizer=deeplab_layers.l2_regularizer(weight_decay),
            name=name)
      self.feature_projection = plain("feature_projection0")
      self.conv0 = plain("decoder_conv0")
      self.resize = deeplab_layers.ResizeBilinear(align_corners,
                                                  name="resize")
      return
    self.feature_projection = deeplab_layers.ConvBNReLU(
        self.low_level_filters, 1, name="feature_projection0", **common)
    self.resize = deeplab_layers.ResizeBilinear(align_corners, name="resize")
    # Each conv is its own attribute: tf.train.Checkpoint does not track
    # Keras layers held in a list attribute, so their weights would be lost.
    for i in range(self.num_convs):
      if self.sum_merge and use_separable_conv:
        conv = deeplab_layers.SplitSeparableConv2D(
            self.filters, quant_friendly=quant_friendly,
            name=f"decoder_split_sep_conv{i}", **common)
      elif use_separable_conv:
        conv = deeplab_layers.SplitSeparableConv2D(
            self.filters, quant_friendly=quant_friendly,
            name=f"decoder_conv{i}", **common)
      else:
        conv = deeplab_layers.ConvBNReLU(
            self.filters, 3, name=f"decoder_conv{i}", **common)
      setattr(self, f"conv{i}", conv)

  @property
  def convs(self):
    """The convs after the merge, in order."""
    if self.output_is_logits:
      return [self.conv0]
    return [getattr(self, f"conv{i}") for i in range(self.num_convs)]

  def build(self, input_shape):
    encoder_shape, low_level_shape = (tuple(s) for s in input_shape)
    self.feature_projection.build(low_level_shape)
    if self.sum_merge or self.output_is_logits:
      self.conv0.build(low_level_shape[:-1] + encoder_shape[-1:])
      self.built = True
      return
    shape = low_level_shape[:-1] + (encoder_shape[-1] + self.low_level_filters,)
    for conv in self.convs:
      conv.build(shape)
      shape = conv.compute_output_shape(shape)
    self.built = True

  def call(self, inputs, training=None):
    encoder_features, low_level_features = inputs
    if self.output_is_logits:
      low_level = self.feature_projection(low_level_features)
    else:
      low_level = self.feature_projection(low_level_features,
                                          training=training)
    encoder = self.resize([encoder_features, low_level])
    if self.output_is_logits:
      return self.conv0(encoder) + low_level
    if self.sum_merge:
      return self.conv0(encoder, training=training) + low_level
    x = ops.concatenate([encoder, low_level], axis=-1)
    for conv in self.convs:
      x = conv(x, training=training)
    return x

  def compute_output_shape(self, input_shape):
    _, low_level_shape = input_shape
    return tuple(low_level_shape[:-1]) + (self.filters,)

  def get_config(self):
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "low_level_filters": self.low_level_filters,
        "use_separable_conv": self.use_separable_conv,
        "num_convs": self.num_convs,
        "batch_norm_momentum": self.batch_norm_momentum,
        "batch_norm_epsilon": self.batch_norm_epsilon,
        "weight_decay": self.weight_decay,
        "sync_batch_norm": self.sync_batch_norm,
        "align_corners": self.align_corners,
        "sum_merge": self.sum_merge,
        "output_is_logits": self.output_is_logits,
        "activation": self.activation,
        "quant_friendly": self.quant_friendly,
    })
    return config
