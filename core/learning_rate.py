"""Learning-rate schedules of official DeepLab (`utils/train_utils.py`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab")
class DeepLabLearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """Poly or step decay, with the official slow start.

  - poly: `(base - end) * (1 - s / decay_steps) ** power + end`.
  - step: `base * decay_factor ** floor(s / decay_step)`.
  - For the first `slow_start_step` steps the rate is
    `slow_start_learning_rate`, which helps when training from scratch or
    with a large base rate. As in official DeepLab, the decay then starts:
    `s = max(step - slow_start_step, 0)`.

  Args:
    base_learning_rate: Rate at step 0 of the decay.
    learning_policy: `poly` or `step`.
    decay_steps: Steps of the poly decay (usually the training length less
      the slow start).
    learning_power: Power of the poly decay (0.9 in the paper).
    end_learning_rate: Floor of the poly decay.
    learning_rate_decay_step: Period of the step decay.
    learning_rate_decay_factor: Factor of the step decay.
    slow_start_step: Length of the slow start (0: none).
    slow_start_learning_rate: Rate during the slow start.
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
               slow_start_learning_rate: float = 1e-4):
    if learning_policy not in ("poly", "step"):
      raise ValueError(
          f"--learning_policy must be 'poly' or 'step', got {learning_policy!r}.")
    self.base_learning_rate = base_learning_rate
    self.learning_policy = learning_policy
    self.decay_steps = max(1, int(decay_steps))
    self.learning_power = learning_power
    self.end_learning_rate = end_learning_rate
    self.learning_rate_decay_step = max(1, int(learning_rate_decay_step))
    self.learning_rate_decay_factor = learning_rate_decay_factor
    self.slow_start_step = slow_start_step
    self.slow_start_learning_rate = slow_start_learning_rate

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    adjusted_step = tf.maximum(step - self.slow_start_step, 0.0)
    if self.learning_policy == "poly":
      fraction = tf.minimum(adjusted_step, self.decay_steps) / self.decay_steps
      rate = ((self.base_learning_rate - self.end_learning_rate) *
              (1.0 - fraction) ** self.learning_power + self.end_learning_rate)
    else:
      rate = self.base_learning_rate * self.learning_rate_decay_factor ** (
          tf.floor(adjusted_step / self.learning_rate_decay_step))
    return tf.where(step < self.slow_start_step,
                    tf.constant(self.slow_start_learning_rate, tf.float32),
                    tf.cast(rate, tf.float32))

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
    }
