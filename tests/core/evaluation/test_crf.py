"""Dense CRF: both backends clean a noisy prediction along image edges."""

import numpy as np
import pytest

from deeplab.core.evaluation import crf


def _noisy_two_region_case(seed=0):
  rng = np.random.default_rng(seed)
  height, width = 48, 64
  truth = np.zeros((height, width), np.int64)
  truth[:, 30:] = 1
  truth[10:30, 5:20] = 2
  colours = np.array([[30, 30, 30], [200, 60, 60], [60, 200, 60]])
  image = np.clip(colours[truth] + rng.normal(0, 8, (height, width, 3)),
                  0, 255).astype(np.uint8)
  # The classifier is right on ~70% of pixels, and unsure everywhere.
  logits = rng.normal(0, 1.0, (height, width, 3))
  logits[np.arange(height)[:, None], np.arange(width), truth] += 0.9
  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  return image, probabilities.astype(np.float32), truth


@pytest.mark.parametrize("backend", ["numpy", "pydensecrf"])
def test_crf_improves_a_noisy_prediction(backend):
  if backend == "pydensecrf":
    pytest.importorskip("pydensecrf.densecrf")
  image, probabilities, truth = _noisy_two_region_case()
  before = np.mean(probabilities.argmax(-1) == truth)
  refined = crf.dense_crf(image, probabilities, backend=backend)
  assert refined.shape == probabilities.shape
  np.testing.assert_allclose(refined.sum(-1), 1.0, atol=1e-4)
  after = np.mean(refined.argmax(-1) == truth)
  assert before < 0.8 and after > 0.95, (before, after)


def test_mismatched_shapes_and_backends_are_errors():
  with pytest.raises(ValueError, match="differ in size"):
    crf.dense_crf(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 2)))
  with pytest.raises(ValueError, match="backend"):
    crf.dense_crf(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 2)) / 2,
                  backend="magic")
