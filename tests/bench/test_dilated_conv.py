"""bench/dilated_conv.py compares the same computation on both sides (no
timings)."""

import os
import sys

import numpy as np
import tensorflow as tf

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
sys.path.insert(0, os.path.abspath(BENCH))
import dilated_conv  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_both_sides_compute_the_same_dilated_block():
  functions, inputs, kernel = dilated_conv.forward_functions(
      tf, (1, 9, 9, 4), 3, 2)
  assert sorted(functions) == ["native", "space_to_batch"]
  a, b = (functions[k]().numpy() for k in ("space_to_batch", "native"))
  assert a.shape == (1, 9, 9, 3) and (a > 0).any()
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # Against a dilated kernel (zeros between the taps) at rate 1.
  dilated = np.zeros((5, 5, 4, 3), np.float32)
  dilated[::2, ::2] = kernel.numpy()
  plain = tf.nn.conv2d(inputs, dilated, 1, "SAME").numpy()
  np.testing.assert_allclose(tf.nn.convolution(
      inputs, kernel, padding="SAME", dilations=2).numpy(), plain,
                             rtol=1e-5, atol=1e-5)


def test_native_gradient_is_reported_not_raised():
  _, inputs, kernel = dilated_conv.forward_functions(tf, (1, 9, 9, 4), 3, 2)
  answer = dilated_conv.native_gradient(tf, inputs, kernel, 2)
  assert answer == "yes" or answer.startswith("no: ")
