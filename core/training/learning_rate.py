"""Learning-rate schedules of official DeepLab (`utils/train_utils.py`),
plus the cosine, exponential and piecewise-constant policies and the linear
warmup of Model Garden's recipes."""

from typing import Sequence

import keras
import tensorflow as tf

from deeplab.core import config as config_lib



@keras.saving.register_keras_serializable(package="deeplab")
class DeepLabLearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """A decay policy, with the official slow start and an optional warmup.

  - poly: `(base - end) * (1 - s / decay_steps) ** power + end`.
  - step: `base * decay_factor ** floor(s / decay_step)`.
  - exponential: `base * decay_factor ** (s / decay_step)` (continuous).
  - cosine: `end + (base - end) * (1 + cos(pi * s / decay_steps)) / 2`.
  - piecewise: `values[i]` for `boundaries[i-1] <= s < boundaries[i]`.
  - For the first `slow_start_step` steps the rate is
    `slow_start_learning_rate`, which helps when training from scratch or
    with a large base rate. As in official DeepLab, the decay then starts:
    `s = max(step - slow_start_step, 0)`.
  - Warmup (after any slow start): for `warmup_steps` steps the rate rises
    linearly from `warmup_learning_rate` to the policy's rate at the end of
    the warmup; the policy is not delayed by it (Model Garden's
    `LinearWarmup`).

  Args:
    base_learning_rate: Rate at step 0 of the decay.
    learning_policy: One of `config_lib.LEARNING_POLICIES`.
    decay_steps: Steps of the poly decay (usually the training length less
      the slow start).
    learning_power: Power of the poly decay (0.9 in the paper).
    end_learning_rate: Floor of the poly decay.
    learning_rate_decay_step: Period of the step and exponential decay.
    learning_rate_decay_factor: Factor of the step and exponential decay.
    slow_start_step: Length of the slow start (0: none).
    slow_start_learning_rate: Rate during the slow start.
    boundaries: Steps at which the piecewise rate changes.
    values: The piecewise rates, one more than `boundaries`.
    warmup_steps: Length of the linear warmup (0: none).
    warmup_learning_rate: Rate at the start of the warmup.
  """

  def __init__(self,
               base_learning_rate: float,
               learning_policy: str = "poly",
               decay_steps: int = 30000,
               learning_power: float = 0.9,
               end_learning_rate: float = 0.0,
               learning_rate_decay_step: int = 2000,
               learning_rate_decay_factor: float = 0.1,
               slow_start_step: int = 0,
               slow_start_learning_rate: float = 1e-4,
               boundaries: Sequence[int] = (),
               values: Sequence[float] = (),
               warmup_steps: int = 0,
               warmup_learning_rate: float = 0.0):
    if learning_policy not in config_lib.LEARNING_POLICIES:
      raise ValueError(
          "--learning_policy must be one of "
          f"{', '.join(config_lib.LEARNING_POLICIES)}; got "
          f"{learning_policy!r}.")
    if learning_policy == "piecewise" and (
        len(values) != len(boundaries) + 1 or
        list(boundaries) != sorted(boundaries)):
      raise ValueError(
          "--learning_policy=piecewise needs increasing "
          "--learning_rate_boundaries and one more --learning_rate_values; "
          f"got boundaries {list(boundaries)} and values {list(values)}.")
    self.base_learning_rate = base_learning_rate
    self.learning_policy = learning_policy
    self.decay_steps = max(1, int(decay_steps))
    self.learning_power = learning_power
    self.end_learning_rate = end_learning_rate
    self.learning_rate_decay_step = max(1, int(learning_rate_decay_step))
    self.learning_rate_decay_factor = learning_rate_decay_factor
    self.slow_start_step = slow_start_step
    self.slow_start_learning_rate = slow_start_learning_rate
    self.boundaries = [int(b) for b in boundaries]
    self.values = [float(v) for v in values]
    self.warmup_steps = int(warmup_steps)
    self.warmup_learning_rate = warmup_learning_rate

  def _decayed(self, adjusted_step: tf.Tensor) -> tf.Tensor:
    """The policy's rate at `adjusted_step` (after the slow start)."""
    base = self.base_learning_rate
    end = self.end_learning_rate
    fraction = tf.minimum(adjusted_step, self.decay_steps) / self.decay_steps
    if self.learning_policy == "poly":
      return (base - end) * (1.0 - fraction) ** self.learning_power + end
    if self.learning_policy == "step":
      return base * self.learning_rate_decay_factor ** (
          tf.floor(adjusted_step / self.learning_rate_decay_step))
    if self.learning_policy == "exponential":
      return base * self.learning_rate_decay_factor ** (
          adjusted_step / self.learning_rate_decay_step)
    if self.learning_policy == "cosine":
      return end + (base - end) * 0.5 * (
          1.0 + tf.cos(3.141592653589793 * fraction))
    index = tf.reduce_sum(tf.cast(
        adjusted_step >= tf.constant(self.boundaries, tf.float32), tf.int32))
    return tf.gather(tf.constant(self.values, tf.float32), index)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    adjusted_step = tf.maximum(step - self.slow_start_step, 0.0)
    rate = tf.cast(self._decayed(adjusted_step), tf.float32)
    if self.warmup_steps:
      end_of_warmup = tf.cast(
          self._decayed(tf.constant(float(self.warmup_steps))), tf.float32)
      warm = self.warmup_learning_rate + (
          end_of_warmup - self.warmup_learning_rate) * (
              adjusted_step / self.warmup_steps)
      rate = tf.where(adjusted_step < self.warmup_steps, warm, rate)
    return tf.where(step < self.slow_start_step,
                    tf.constant(self.slow_start_learning_rate, tf.float32),
                    rate)

  def get_config(self):
    return {
        "base_learning_rate": self.base_learning_rate,
        "learning_policy": self.learning_policy,
        "decay_steps": self.decay_steps,
        "learning_power": self.learning_power,
        "end_learning_rate": self.end_learning_rate,
        "learning_rate_decay_step": self.learning_rate_decay_step,
        "learning_rate_decay_factor": self.learning_rate_decay_factor,
        "slow_start_step": self.slow_start_step,
        "slow_start_learning_rate": self.slow_start_learning_rate,
        "boundaries": list(self.boundaries),
        "values": list(self.values),
        "warmup_steps": self.warmup_steps,
        "warmup_learning_rate": self.warmup_learning_rate,
    }
