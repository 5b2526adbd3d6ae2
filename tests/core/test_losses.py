"""Cross-entropy loss against values computed by hand."""

import numpy as np
import pytest

from deeplab.core import losses


def _logits_and_labels():
  logits = np.array([[[[2.0, 0.0], [0.0, 1.0]],
                      [[0.5, 0.5], [3.0, -1.0]]]], np.float32)  # [1, 2, 2, 2]
  labels = np.array([[[0, 1], [255, 1]]], np.int32)
  return logits, labels


def _pixel_ce(logit, label):
  return -np.log(np.exp(logit[label]) / np.sum(np.exp(logit)))


def test_ignore_label_is_left_out():
  logits, labels = _logits_and_labels()
  expected = np.mean([_pixel_ce(logits[0, 0, 0], 0),
                      _pixel_ce(logits[0, 0, 1], 1),
                      _pixel_ce(logits[0, 1, 1], 1)])
  got = losses.softmax_cross_entropy_loss(logits, labels, 2, 255)
  assert float(got) == pytest.approx(expected, rel=1e-6)


def test_label_weights_scale_each_class():
  logits, labels = _logits_and_labels()
  a = _pixel_ce(logits[0, 0, 0], 0)
  b = _pixel_ce(logits[0, 0, 1], 1)
  c = _pixel_ce(logits[0, 1, 1], 1)
  expected = (1.0 * a + 3.0 * b + 3.0 * c) / (1.0 + 3.0 + 3.0)
  got = losses.softmax_cross_entropy_loss(logits, labels, 2, 255,
                                          label_weights=[1.0, 3.0])
  assert float(got) == pytest.approx(expected, rel=1e-6)


def test_top_k_keeps_the_hardest_pixels():
  logits, labels = _logits_and_labels()
  per_pixel = sorted([_pixel_ce(logits[0, 0, 0], 0),
                      _pixel_ce(logits[0, 0, 1], 1),
                      _pixel_ce(logits[0, 1, 1], 1)], reverse=True)
  got = losses.softmax_cross_entropy_loss(logits, labels, 2, 255,
                                          top_k_percent_pixels=0.5)
  # 4 pixels * 0.5 = 2 hardest pixels.
  assert float(got) == pytest.approx(np.mean(per_pixel[:2]), rel=1e-6)


def test_all_ignored_gives_zero():
  logits, _ = _logits_and_labels()
  labels = np.full((1, 2, 2), 255, np.int32)
  assert float(losses.softmax_cross_entropy_loss(logits, labels, 2, 255)) == 0
