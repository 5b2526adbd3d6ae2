"""Boundary refinement of the logits (Peng et al., "Large Kernel Matters",
CVPR 2017, Sec. 3.2 and Fig. 2C).

A residual block on the score map: `logits + conv3x3(relu(conv3x3(logits)))`,
which sharpens object boundaries at little cost. Optional in our models
(`--boundary_refinement`); official DeepLab has no such block.
"""

import keras
from keras import ops

from deeplab.core.modeling import layers as deeplab_layers


@keras.saving.register_keras_serializable(package="deeplab")
class BoundaryRefinement(keras.layers.Layer):
  """Residual 3x3-ReLU-3x3 refinement with as many channels as its input.

  Args:
    weight_decay: Slim-convention L2 weight decay on the kernels.

  Example:
    >>> BoundaryRefinement()(keras.Input((None, None, 21))).shape
    (None, None, None, 21)
  """

  def __init__(self, weight_decay: float = 4e-5, **kwargs):
    super().__init__(**kwargs)
    self.weight_decay = weight_decay
    self.conv1 = None
    self.conv2 = None

  def build(self, input_shape):
    channels = int(input_shape[-1])
    regularizer = deeplab_layers.l2_regularizer(self.weight_decay)
    self.conv1 = keras.layers.Conv2D(channels, 3, padding="same",
                                     kernel_regularizer=regularizer,
                                     name="conv1")
    # Zero-initialised: the block starts as the identity.
    self.conv2 = keras.layers.Conv2D(channels, 3, padding="same",
                                     kernel_initializer="zeros",
                                     kernel_regularizer=regularizer,
                                     name="conv2")
    self.conv1.build(input_shape)
    self.conv2.build(input_shape)
    self.built = True

  def call(self, inputs):
    return inputs + self.conv2(ops.relu(self.conv1(inputs)))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({"weight_decay": self.weight_decay})
    return config
