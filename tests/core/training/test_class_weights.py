"""Adaptive class weights: running frequencies, across replicas."""

import numpy as np
import tensorflow as tf

from deeplab.core.training import class_weights


def test_adaptive_weights_follow_running_frequencies():
  adaptive = class_weights.AdaptiveClassWeights(2, ignore_label=255,
                                                momentum=0.5, max_weight=10.0)
  # Start: uniform frequencies -> weight 1 for both classes.
  np.testing.assert_allclose(adaptive.weights().numpy(), [1.0, 1.0])
  labels = tf.constant([[0, 0, 0, 1, 255]])
  weights = adaptive.update(labels).numpy()
  # Batch frequencies (0.75, 0.25); EMA: 0.5 * 0.5 + 0.5 * batch.
  expected_f = np.array([0.625, 0.375])
  np.testing.assert_allclose(adaptive.frequencies.numpy(), expected_f)
  np.testing.assert_allclose(weights, 1.0 / (2 * expected_f), rtol=1e-6)
  # An all-ignored batch changes nothing.
  adaptive.update(tf.constant([[255, 255]]))
  np.testing.assert_allclose(adaptive.frequencies.numpy(), expected_f)
