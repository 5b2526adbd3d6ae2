"""Auxiliary head: deep supervision of an intermediate backbone feature.

PSPNet (Zhao et al., CVPR 2017, Sec. 3.3) adds a second classifier on the
stride-16 feature before the last backbone stage (ResNet `res4b22`, slim's
`block3`) and trains with `loss + 0.4 * aux_loss`; the auxiliary gradient
eases the optimisation of the deep backbone. The head is dropped at
inference. TF Model Garden and mmsegmentation (`FCNHead` as
`auxiliary_head`, weight 0.4) train DeepLabv3+ the same way. Official
DeepLab has no auxiliary head; ours is off unless `--aux_loss_weight > 0`.

The head is conv 3x3 + BatchNorm + ReLU, dropout, and a 1x1 conv with bias
to the classes (mmsegmentation's `FCNHead(num_convs=1)`).
"""

from typing import Optional

import keras

from deeplab.core.modeling import layers as deeplab_layers


@keras.saving.register_keras_serializable(package="deeplab")
class AuxiliaryHead(keras.layers.Layer):
  """Conv-BN-ReLU, dropout and a 1x1 classifier: auxiliary logits.

  Sublayers (and so checkpoint and variable paths): `conv` (a
  `ConvBNReLU`), `dropout` and `logits` (the class-dependent 1x1 conv).

  Args:
    num_classes: Output channels of the classifier.
    filters: Channels of the 3x3 conv (mmsegmentation: 256).
    kernel_size: Kernel size of that conv.
    dropout_rate: Dropout before the classifier (PSPNet, mmsegmentation:
      0.1).
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon (1e-5, as official DeepLab's heads
      and the PyTorch BatchNorm of this head's reference implementations).
    weight_decay: Slim-convention L2 weight decay on both kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    activation: `relu` or `relu6` (bounded, for quantization).

  Example:
    >>> head = AuxiliaryHead(num_classes=21, filters=64)
    >>> head(keras.Input((33, 33, 96))).shape
    (None, 33, 33, 21)
  """

  def __init__(self,
               num_classes: int,
               filters: int = 256,
               kernel_size: int = 3,
               dropout_rate: float = 0.1,
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = deeplab_layers.HEAD_BATCH_NORM_EPSILON,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               activation: str = "relu",
               **kwargs):
    super().__init__(**kwargs)
    if num_classes < 1 or filters < 1 or kernel_size < 1:
      raise ValueError(
          "AuxiliaryHead needs positive num_classes, filters and kernel_size; "
          f"got {num_classes}, {filters}, {kernel_size}.")
    if not 0.0 <= dropout_rate < 1.0:
      raise ValueError(
          f"AuxiliaryHead dropout_rate must be in [0, 1), got {dropout_rate}.")
    self.num_classes = int(num_classes)
    self.filters = int(filters)
    self.kernel_size = int(kernel_size)
    self.dropout_rate = float(dropout_rate)
    self.batch_norm_momentum = batch_norm_momentum
    self.batch_norm_epsilon = batch_norm_epsilon
    self.weight_decay = weight_decay
    self.sync_batch_norm = sync_batch_norm
    self.activation = activation
    # One attribute per sublayer: tf.train.Checkpoint tracks them by name.
    self.conv = deeplab_layers.ConvBNReLU(
        self.filters, self.kernel_size,
        batch_norm_momentum=batch_norm_momentum,
        batch_norm_epsilon=batch_norm_epsilon,
        weight_decay=weight_decay, sync_batch_norm=sync_batch_norm,
        activation=activation, name="conv")
    self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
    # Initialised as the main logits layer (official DeepLab's stddev 0.01).
    self.logits = keras.layers.Conv2D(
        self.num_classes, 1, use_bias=True,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        kernel_regularizer=deeplab_layers.l2_regularizer(weight_decay),
        name="logits")

  def build(self, input_shape):
    self.conv.build(input_shape)
    hidden_shape = self.conv.compute_output_shape(input_shape)
    self.dropout.build(hidden_shape)
    self.logits.build(hidden_shape)
    self.built = True

  def call(self, inputs, training: Optional[bool] = None):
    x = self.conv(inputs, training=training)
    x = self.dropout(x, training=training)
    return self.logits(x)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.num_classes,)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_classes": self.num_classes,
        "filters": self.filters,
        "kernel_size": self.kernel_size,
        "dropout_rate": self.dropout_rate,
        "batch_norm_momentum": self.batch_norm_momentum,
        "batch_norm_epsilon": self.batch_norm_epsilon,
        "weight_decay": self.weight_decay,
        "sync_batch_norm": self.sync_batch_norm,
        "activation": self.activation,
    })
    return config
