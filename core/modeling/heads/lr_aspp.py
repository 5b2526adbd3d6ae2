"""Lite R-ASPP segmentation head (Howard et al., "Searching for
MobileNetV3", ICCV 2019, Sec. 6.2 and Fig. 10).

Official TF DeepLab has no LR-ASPP layer (its MobileNetV3 configs get a
similar head from ASPP and decoder options); this is the paper's head:

* high-level feature (stride 16) -> 1x1 conv + BN + ReLU (128 channels);
* gated by a squeeze-and-excitation branch: a large average pool (49x49,
  stride (16, 20) at 1024x2048 inputs; global when no size is given),
  1x1 conv, sigmoid, bilinear resize back;
* the product is upsampled to the low-level feature (stride 8) and mapped
  to the classes by a 1x1 conv; the low-level feature gets its own 1x1
  conv to the classes; their sum is the logits.
"""

from typing import Optional, Sequence

import keras
from keras import ops

from deeplab.core.modeling import layers as deeplab_layers


@keras.saving.register_keras_serializable(package="deeplab")
class LRASPP(keras.layers.Layer):
  """Lite R-ASPP, called as `head([high_level, low_level])` -> logits.

  Args:
    num_classes: Output channels (logits).
    filters: Channels of the high-level branch (128).
    pool_size: Average-pool window of the gate, in feature pixels; None
      pools globally.
    pool_stride: Its stride.
    batch_norm_momentum: BatchNorm momentum.
    batch_norm_epsilon: BatchNorm epsilon (1e-5, as official DeepLab's heads
      and the PyTorch BatchNorm of this head's reference implementations).
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    activation: `relu` or `relu6`.
    align_corners: Resize mode.

  Example:
    >>> high = keras.Input((None, None, 480))
    >>> low = keras.Input((None, None, 40))
    >>> LRASPP(num_classes=19)([high, low]).shape
    (None, None, None, 19)
  """

  def __init__(self,
               num_classes: int,
               filters: int = 128,
               pool_size: Optional[Sequence[int]] = None,
               pool_stride: Sequence[int] = (1, 1),
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = deeplab_layers.HEAD_BATCH_NORM_EPSILON,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               activation: str = "relu",
               align_corners: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.filters = int(filters)
    self.pool_size = tuple(int(p) for p in pool_size) if pool_size else None
    self.pool_stride = tuple(int(p) for p in pool_stride)
    self.batch_norm_momentum = batch_norm_momentum
    self.batch_norm_epsilon = batch_norm_epsilon
    self.weight_decay = weight_decay
    self.sync_batch_norm = sync_batch_norm
    self.activation = activation
    self.align_corners = align_corners

    # === Layers ===
    regularizer = deeplab_layers.l2_regularizer(weight_decay)
    self.conv = deeplab_layers.ConvBNReLU(
        self.filters, 1, batch_norm_momentum=batch_norm_momentum,
        batch_norm_epsilon=batch_norm_epsilon, weight_decay=weight_decay,
        sync_batch_norm=sync_batch_norm, activation=activation, name="conv")
    self.gate = keras.layers.Conv2D(self.filters, 1, activation="sigmoid",
                                    kernel_regularizer=regularizer,
                                    name="gate")
    self.gate_resize = deeplab_layers.ResizeBilinear(align_corners,
                                                     name="gate_resize")
    self.upsample = deeplab_layers.ResizeBilinear(align_corners,
                                                  name="upsample")
    self.high_logits = keras.layers.Conv2D(self.num_classes, 1,
                                           kernel_regularizer=regularizer,
                                           name="high_logits")
    self.low_logits = keras.layers.Conv2D(self.num_classes, 1,
                                          kernel_regularizer=regularizer,
                                          name="low_logits")

  def build(self, input_shape):
    high_shape, low_shape = (tuple(s) for s in input_shape)
    self.conv.build(high_shape)
    self.gate.build(high_shape[:1] + (1, 1, high_shape[-1]))
    self.high_logits.build(low_shape[:-1] + (self.filters,))
    self.low_logits.build(low_shape)
    self.built = True

  def call(self, inputs, training=None):
    high, low = inputs
    x = self.conv(high, training=training)
    if self.pool_size is None:
      pooled = ops.mean(high, axis=(1, 2), keepdims=True)
    else:
      pooled = ops.average_pool(high, self.pool_size, self.pool_stride,
                                padding="valid")
    x = x * self.gate_resize([self.gate(pooled), high])
    x = self.upsample([x, low])
    return self.high_logits(x) + self.low_logits(low)

  def compute_output_shape(self, input_shape):
    _, low_shape = input_shape
    return tuple(low_shape[:-1]) + (self.num_classes,)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_classes": self.num_classes,
        "filters": self.filters,
        "pool_size": list(self.pool_size) if self.pool_size else None,
        "pool_stride": list(self.pool_stride),
        "batch_norm_momentum": self.batch_norm_momentum,
        "batch_norm_epsilon": self.batch_norm_epsilon,
        "weight_decay": self.weight_decay,
        "sync_batch_norm": self.sync_batch_norm,
        "activation": self.activation,
        "align_corners": self.align_corners,
    })
    return config
