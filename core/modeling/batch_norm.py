"""BatchNormalization on TensorFlow's fused kernel.

Keras 3's `BatchNormalization` computes with separate moment, normalise and
moving-average ops on every backend. TensorFlow has one fused kernel for
all of it (`FusedBatchNormV3`, with its own gradient kernel), which slim and
tf.keras used for 4-D inputs; the DeepLab backbones hold dozens of BN
layers, so the difference shows in every training step (measured in
docs/benchmarks.md).

`FusedBatchNormalization` is Keras's layer with the same variables, config
and checkpoint layout; only `call` differs, and only where the fused kernel
applies: the TensorFlow backend, a 4-D channels-last input, no mask, no
renormalisation and no cross-replica synchronization (synchronized BN keeps
Keras's all-reduced moments). Elsewhere it falls back to Keras's `call`.

One numerical difference, shared with slim and tf.keras: the fused kernel
updates the moving variance with the unbiased (n / (n - 1)) batch variance,
where Keras's own layer uses the biased one.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab")
class FusedBatchNormalization(keras.layers.BatchNormalization):
  """`keras.layers.BatchNormalization` computed by `FusedBatchNormV3`.

  Takes the arguments of `keras.layers.BatchNormalization`.

  Example:
    >>> bn = FusedBatchNormalization(momentum=0.9, name="bn")
    >>> bn(keras.ops.ones((2, 4, 4, 8)), training=True).shape
    TensorShape([2, 4, 4, 8])
  """

  def _fusable(self, inputs, mask) -> bool:
    return (keras.backend.backend() == "tensorflow" and mask is None and
            len(inputs.shape) == 4 and self.axis in (-1, 3) and
            not self.synchronized and not self.renorm and self.scale and
            self.center)

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, mask):
      return super().call(inputs, training=training, mask=mask)
    # Like Keras's layer: float32 statistics whatever the compute dtype.
    x = tf.cast(inputs, tf.float32)
    moving_mean = tf.cast(self.moving_mean, tf.float32)
    moving_variance = tf.cast(self.moving_variance, tf.float32)
    gamma = tf.cast(self.gamma, tf.float32)
    beta = tf.cast(self.beta, tf.float32)
    if training and self.trainable:
      # With exponential_avg_factor < 1 the kernel returns the updated
      # moving statistics rather than the batch ones.
      outputs, new_mean, new_variance = tf.compat.v1.nn.fused_batch_norm(
          x, gamma, beta, mean=moving_mean, variance=moving_variance,
          epsilon=self.epsilon, is_training=True,
          exponential_avg_factor=1.0 - self.momentum)
      self.moving_mean.assign(tf.cast(new_mean, self.moving_mean.dtype))
      self.moving_variance.assign(
          tf.cast(new_variance, self.moving_variance.dtype))
    else:
      outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
          x, gamma, beta, mean=moving_mean, variance=moving_variance,
          epsilon=self.epsilon, is_training=False)
    return tf.cast(outputs, self.compute_dtype)
