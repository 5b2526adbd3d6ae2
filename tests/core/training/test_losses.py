"""Cross-entropy loss against values computed by hand."""

import numpy as np
import pytest

from deeplab.core.training import losses


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


def _valid_pixels():
  logits, labels = _logits_and_labels()
  return [(logits[0, 0, 0], 0), (logits[0, 0, 1], 1), (logits[0, 1, 1], 1)]


def test_label_smoothing_mixes_in_the_uniform_target():
  logits, labels = _logits_and_labels()
  s = 0.2
  expected = []
  for logit, label in _valid_pixels():
    log_p = logit - np.log(np.sum(np.exp(logit)))
    target = np.full(2, s / 2)
    target[label] += 1 - s
    expected.append(-np.sum(target * log_p))
  got = losses.softmax_cross_entropy_loss(logits, labels, 2, 255,
                                          label_smoothing=s)
  assert float(got) == pytest.approx(np.mean(expected), rel=1e-6)


def test_focal_loss_down_weights_easy_pixels():
  logits, labels = _logits_and_labels()
  gamma, alpha = 2.0, 0.25
  expected = []
  for logit, label in _valid_pixels():
    p = np.exp(logit[label]) / np.sum(np.exp(logit))
    expected.append(-alpha * (1 - p) ** gamma * np.log(p))
  got = losses.softmax_cross_entropy_loss(logits, labels, 2, 255,
                                          focal_gamma=gamma, focal_alpha=alpha)
  assert float(got) == pytest.approx(np.mean(expected), rel=1e-5)


def test_hard_example_mining_ramps_from_all_pixels_to_top_k():
  # 4 pixels, one ignored; top_k 0.25 keeps 1 pixel once the ramp is over.
  logits, labels = _logits_and_labels()
  per_pixel = sorted([_pixel_ce(l, c) for l, c in _valid_pixels()],
                     reverse=True)

  def loss_at(step):
    return float(losses.softmax_cross_entropy_loss(
        logits, labels, 2, 255, top_k_percent_pixels=0.25,
        hard_example_mining_step=100, global_step=step))

  # Step 0: fraction 1.0 -> all 4 pixels kept, 3 non-zero losses.
  assert loss_at(0) == pytest.approx(np.mean(per_pixel), rel=1e-6)
  # Step 50: fraction 0.5*0.25 + 0.5 = 0.625 -> int(2.5) = 2 hardest pixels.
  assert float(losses.top_k_fraction(0.25, 100, 50)) == pytest.approx(0.625)
  assert loss_at(50) == pytest.approx(np.mean(per_pixel[:2]), rel=1e-6)
  # From step 100 on: 0.25 -> 1 pixel.
  assert loss_at(100) == pytest.approx(per_pixel[0], rel=1e-6)
  assert loss_at(1000) == pytest.approx(per_pixel[0], rel=1e-6)


def test_labels_at_logits_size_is_corner_aligned_nearest():
  """Official `upsample_logits=False`: resize_nearest_neighbor with
  align_corners=True, i.e. source index round(i * (in - 1) / (out - 1))."""
  labels = np.arange(9 * 13, dtype=np.int32).reshape(1, 9, 13)
  logits = np.zeros((1, 3, 4, 2), np.float32)
  got = losses.labels_at_logits_size(labels, logits).numpy()
  rows = np.floor(np.arange(3) * 8 / 2 + 0.5).astype(int)
  cols = np.floor(np.arange(4) * 12 / 3 + 0.5).astype(int)
  np.testing.assert_array_equal(got[0], labels[0][np.ix_(rows, cols)])


def test_loss_without_upsampling_uses_downsampled_labels():
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (2, 17, 17)).astype(np.int32)
  labels[0, :4] = 255
  config = config_lib.LossConfig(upsample_logits=False)
  got = losses.loss_from_config(logits, labels, 3, 255, config)
  small = labels[:, ::4, ::4]  # 17 -> 5 with corners aligned: every 4th.
  expected = losses.softmax_cross_entropy_loss(logits, small, 3, 255)
  assert float(got) == pytest.approx(float(expected), rel=1e-6)
