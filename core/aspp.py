"""Atrous Spatial Pyramid Pooling (DeepLabv3, Sec. 3.3; v3+, Sec. 3.1).

Reproduces the ASPP of official DeepLab's `model.extract_features`
(`aspp_with_batch_norm=True`): parallel branches on the backbone feature,
concatenated in the official order (image pooling, 1x1, atrous rates...),
then a 1x1 projection and dropout. With no atrous rates it is "ASPP lite"
(image pooling and 1x1 only), which is what mobilenet_v2 uses.
"""

from typing import Sequence

import keras
from keras import ops

from deeplab.core import layers as deeplab_layers


@keras.saving.register_keras_serializable(package="deeplab")
class ASPP(keras.layers.Layer):
  """Atrous Spatial Pyramid Pooling.

  Branches (each Conv + BN + ReLU with `filters` channels), in the official
  concat order so that official checkpoints map onto the projection:

  1. `image_pooling` (optional): global average pool, 1x1 conv, then a
     bilinear resize back to the feature's (dynamic) size.
  2. `aspp0`: 1x1 conv.
  3. `aspp1..3`: 3x3 atrous convs at `atrous_rates`, either DeepLab's split
     separable conv (depthwise + BN + ReLU, pointwise + BN + ReLU) or a
     regular conv.

  Then `concat_projection` (1x1 conv + BN + ReLU) and dropout (official
  keep_prob 0.9).

  Args:
    filters: Channels of every branch and of the projection (256).
    atrous_rates: Rates of the atrous branches, e.g. (6, 12, 18) at output
      stride 16; empty for ASPP lite.
    use_separable_conv: Separable (official default) or regular atrous
      convs.
    image_pooling: Add the image-pooling branch.
    dropout_rate: Dropout after the projection.
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon.
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    align_corners: Resize mode of the image-pooling branch (irrelevant in
      practice: resizing a 1x1 map only broadcasts it).

  Example:
    >>> features = keras.Input((None, None, 320))
    >>> out = ASPP(atrous_rates=(6, 12, 18), name="aspp")(features)
    >>> out.shape
    (None, None, None, 256)
  """

  def __init__(self,
               filters: int = 256,
               atrous_rates: Sequence[int] = (),
               use_separable_conv: bool = True,
               image_pooling: bool = True,
               dropout_rate: float = 0.1,
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = 1e-3,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               align_corners: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.atrous_rates = tuple(int(r) for r in atrous_rates or ())
    self.use_separable_conv = use_separable_conv
    self.image_pooling = image_pooling
    self.dropout_rate = dropout_rate
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
        sync_batch_norm=sync_batch_norm)
    if image_pooling:
      self.image_pooling_conv = deeplab_layers.ConvBNReLU(
          self.filters, 1, name="image_pooling", **common)
      self.image_pooling_resize = deeplab_layers.ResizeBilinear(
          align_corners, name="image_pooling_resize")
    self.conv_1x1 = deeplab_layers.ConvBNReLU(
        self.filters, 1, name="aspp0", **common)
    # Each branch is its own attribute: tf.train.Checkpoint does not track
    # Keras layers held in a list attribute, so their weights would be lost.
    for i, rate in enumerate(self.atrous_rates, 1):
      if use_separable_conv:
        branch = deeplab_layers.SplitSeparableConv2D(
            self.filters, rate, name=f"aspp{i}", **common)
      else:
        branch = deeplab_layers.ConvBNReLU(
            self.filters, 3, dilation_rate=rate, name=f"aspp{i}", **common)
      setattr(self, f"atrous_conv{i}", branch)
    self.projection = deeplab_layers.ConvBNReLU(
        self.filters, 1, name="concat_projection", **common)
    self.dropout = keras.layers.Dropout(dropout_rate, name="dropout")

  @property
  def num_branches(self) -> int:
    """Number of concatenated branches (2 for ASPP lite, 5 for full ASPP)."""
    return int(self.image_pooling) + 1 + len(self.atrous_rates)

  def build(self, input_shape):
    input_shape = tuple(input_shape)
    if self.image_pooling:
      self.image_pooling_conv.build(input_shape[:1] + (1, 1, input_shape[-1]))
    self.conv_1x1.build(input_shape)
    for branch in self.atrous_convs:
      branch.build(input_shape)
    self.projection.build(
        input_shape[:-1] + (self.num_branches * self.filters,))
    self.built = True

  @property
  def atrous_convs(self):
    """The atrous branches, in rate order."""
    return [getattr(self, f"atrous_conv{i}")
            for i in range(1, len(self.atrous_rates) + 1)]

  def call(self, inputs, training=None):
    branches = []
    if self.image_pooling:
      pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
      pooled = self.image_pooling_conv(pooled, training=training)
      branches.append(self.image_pooling_resize([pooled, inputs]))
    branches.append(self.conv_1x1(inputs, training=training))
    for branch in self.atrous_convs:
      branches.append(branch(inputs, training=training))
    x = ops.concatenate(branches, axis=-1)
    x = self.projection(x, training=training)
    return self.dropout(x, training=training)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.filters,)

  def get_config(self):
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "atrous_rates": list(self.atrous_rates),
        "use_separable_conv": self.use_separable_conv,
        "image_pooling": self.image_pooling,
        "dropout_rate": self.dropout_rate,
        "batch_norm_momentum": self.batch_norm_momentum,
        "batch_norm_epsilon": self.batch_norm_epsilon,
        "weight_decay": self.weight_decay,
        "sync_batch_norm": self.sync_batch_norm,
        "align_corners": self.align_corners,
    })
    return config
