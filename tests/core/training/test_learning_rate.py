"""Learning-rate schedules at chosen steps."""

import keras
import pytest

from deeplab.core.training import learning_rate


def test_poly_values():
  schedule = learning_rate.DeepLabLearningRate(0.01, "poly", decay_steps=100,
                                               learning_power=0.9)
  assert float(schedule(0)) == pytest.approx(0.01)
  assert float(schedule(50)) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-6)
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
  assert float(schedule(150)) == pytest.approx(0.0, abs=1e-9)


def test_step_values():
  schedule = learning_rate.DeepLabLearningRate(
      0.1, "step", learning_rate_decay_step=10, learning_rate_decay_factor=0.5)
  assert float(schedule(9)) == pytest.approx(0.1)
  assert float(schedule(10)) == pytest.approx(0.05)
  assert float(schedule(25)) == pytest.approx(0.025)


def test_slow_start_then_decay_from_its_end():
  schedule = learning_rate.DeepLabLearningRate(
      0.01, "poly", decay_steps=100, slow_start_step=10,
      slow_start_learning_rate=1e-4)
  assert float(schedule(5)) == pytest.approx(1e-4)
  assert float(schedule(10)) == pytest.approx(0.01)
  assert float(schedule(60)) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-6)


def test_config_round_trip_and_bad_policy():
  schedule = learning_rate.DeepLabLearningRate(0.01, "step", slow_start_step=3)
  clone = learning_rate.DeepLabLearningRate.from_config(schedule.get_config())
  assert clone.get_config() == schedule.get_config()
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(schedule))
  assert float(restored(4)) == float(schedule(4))
  with pytest.raises(ValueError, match="learning_policy"):
    learning_rate.DeepLabLearningRate(0.01, "cosine-ish")


def test_cosine_exponential_and_piecewise_values():
  import math  # pylint: disable=g-import-not-at-top
  cosine = learning_rate.DeepLabLearningRate(0.1, "cosine", decay_steps=100,
                                             end_learning_rate=0.01)
  assert float(cosine(0)) == pytest.approx(0.1)
  assert float(cosine(25)) == pytest.approx(
      0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-6)
  assert float(cosine(100)) == pytest.approx(0.01, rel=1e-6)
  assert float(cosine(200)) == pytest.approx(0.01, rel=1e-6)

  exponential = learning_rate.DeepLabLearningRate(
      0.1, "exponential", learning_rate_decay_step=10,
      learning_rate_decay_factor=0.5)
  assert float(exponential(5)) == pytest.approx(0.1 * 0.5 ** 0.5, rel=1e-6)
  assert float(exponential(20)) == pytest.approx(0.025, rel=1e-6)

  piecewise = learning_rate.DeepLabLearningRate(
      0.1, "piecewise", boundaries=[10, 20], values=[0.1, 0.01, 0.001])
  assert [float(piecewise(s)) for s in (0, 9, 10, 19, 20, 99)] == pytest.approx(
      [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
  with pytest.raises(ValueError, match="piecewise"):
    learning_rate.DeepLabLearningRate(0.1, "piecewise", boundaries=[10],
                                      values=[0.1])


def test_warmup_rises_linearly_to_the_policy():
  schedule = learning_rate.DeepLabLearningRate(
      0.01, "poly", decay_steps=100, warmup_steps=10,
      warmup_learning_rate=0.001)
  at_end = 0.01 * (1 - 10 / 100) ** 0.9
  assert float(schedule(0)) == pytest.approx(0.001)
  assert float(schedule(5)) == pytest.approx(0.001 + (at_end - 0.001) / 2,
                                             rel=1e-6)
  assert float(schedule(10)) == pytest.approx(at_end, rel=1e-6)
  assert float(schedule(50)) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-6)


def test_slow_start_then_warmup():
  schedule = learning_rate.DeepLabLearningRate(
      0.1, "step", slow_start_step=5, slow_start_learning_rate=1e-4,
      warmup_steps=4, warmup_learning_rate=0.0, learning_rate_decay_step=100)
  assert float(schedule(4)) == pytest.approx(1e-4)
  assert float(schedule(5)) == pytest.approx(0.0, abs=1e-9)
  assert float(schedule(7)) == pytest.approx(0.05)
  assert float(schedule(9)) == pytest.approx(0.1)
