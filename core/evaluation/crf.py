"""Dense-CRF post-processing of DeepLab probabilities (DeepLab v1/v2 style).

A fully connected CRF with a Gaussian spatial kernel (smoothness) and a
bilateral kernel (pixels of similar colour nearby take the same label),
solved by mean-field iterations (Krähenbühl and Koltun, NIPS 2011).

With the extra `crf` installed (`pydensecrf2`, permutohedral lattice) that
library does the work. Otherwise a pure-NumPy mean field runs: the Gaussian
kernel as a separable convolution, the bilateral kernel on a coarse
bilateral grid (splat, blur, slice), an approximation of the exact filter
that is fast and has bounded memory.

Example:

  labels = dense_crf(image, probabilities).argmax(-1)
"""

import importlib.util
from typing import Optional

import numpy as np


def _have_pydensecrf() -> bool:
  try:
    return importlib.util.find_spec("pydensecrf.densecrf") is not None
  except ImportError:
    return False


def _pydensecrf(image, probabilities, iterations, sxy_gaussian,
                compat_gaussian, sxy_bilateral, srgb, compat_bilateral):
  import pydensecrf.densecrf as dcrf  # pylint: disable=g-import-not-at-top
  from pydensecrf.utils import unary_from_softmax  # pylint: disable=g-import-not-at-top
  height, width, classes = probabilities.shape
  crf = dcrf.DenseCRF2D(width, height, classes)
  crf.setUnaryEnergy(np.ascontiguousarray(
      unary_from_softmax(probabilities.transpose(2, 0, 1))))
  crf.addPairwiseGaussian(sxy=sxy_gaussian, compat=compat_gaussian)
  crf.addPairwiseBilateral(sxy=sxy_bilateral, srgb=srgb,
                           rgbim=np.ascontiguousarray(image),
                           compat=compat_bilateral)
  result = np.array(crf.inference(iterations), np.float32)
  return result.reshape(classes, height, width).transpose(1, 2, 0)


def _blur_axis(x: np.ndarray, axis: int, sigma: float) -> np.ndarray:
  """Gaussian blur along one axis (zero padding), with NumPy only."""
  radius = max(1, int(3 * sigma))
  offsets = np.arange(-radius, radius + 1)
  # Unnormalised, as the CRF's kernel exp(-d^2 / 2 sigma^2): weight 1 at 0.
  weights = np.exp(-0.5 * (offsets / sigma) ** 2)
  padding = [(0, 0)] * x.ndim
  padding[axis] = (radius, radius)
  padded = np.pad(x, padding)
  out = np.zeros_like(x)
  length = x.shape[axis]
  for weight, start in zip(weights, range(2 * radius + 1)):
    out += weight * np.take(padded, np.arange(start, start + length),
                            axis=axis)
  return out


def _gaussian_message(q: np.ndarray, sxy: float) -> np.ndarray:
  """Sum over the other pixels j of exp(-|p_i - p_j|^2 / 2 sxy^2) Q(j)."""
  return _blur_axis(_blur_axis(q, 0, sxy), 1, sxy) - q


class _BilateralGrid:
  """Splat/blur/slice on a grid of (y, x, r, g, b) cells of size sxy/srgb."""

  def __init__(self, image: np.ndarray, sxy: float, srgb: float):
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    coords = [ys / sxy, xs / sxy] + [image[..., c] / srgb for c in range(3)]
    cells = [np.round(c).astype(np.int64).ravel() + 1 for c in coords]
    self.shape = tuple(int(c.max()) + 2 for c in cells)
    self.index = np.ravel_multi_index(cells, self.shape)
    self.size = int(np.prod(self.shape))

  def filter(self, q: np.ndarray) -> np.ndarray:
    """Approximately sums exp(-feature distance^2 / 2) Q over all pixels."""
    classes = q.shape[-1]
    flat = q.reshape(-1, classes)
    grid = np.stack([np.bincount(self.index, flat[:, c], self.size)
                     for c in range(classes)], -1)
    grid = grid.reshape(self.shape + (classes,))
    for axis in range(5):  # [0.5, 1, 0.5] ~ exp(-d^2 / 2) at d = 0, 1 cell.
      grid = grid + 0.5 * (np.roll(grid, 1, axis) + np.roll(grid, -1, axis))
    # Less the pixel's own contribution (weight 1), as in the exact kernel.
    return grid.reshape(-1, classes)[self.index].reshape(q.shape) - q


def _softmax(x: np.ndarray) -> np.ndarray:
  x = x - x.max(axis=-1, keepdims=True)
  e = np.exp(x)
  return e / e.sum(axis=-1, keepdims=True)


def _numpy_crf(image, probabilities, iterations, sxy_gaussian,
               compat_gaussian, sxy_bilateral, srgb, compat_bilateral):
  unary = np.log(np.clip(probabilities, 1e-8, 1.0)).astype(np.float32)
  grid = _BilateralGrid(image.astype(np.float32), sxy_bilateral, srgb)
  q = _softmax(unary)
  for _ in range(iterations):
    # Potts model: agreeing with neighbours lowers the energy of a label.
    message = (compat_gaussian * _gaussian_message(q, sxy_gaussian) +
               compat_bilateral * grid.filter(q))
    q = _softmax(unary + message)
  return q.astype(np.float32)


def dense_crf(image: np.ndarray, probabilities: np.ndarray,
              iterations: int = 5, sxy_gaussian: float = 3.0,
              compat_gaussian: float = 3.0, sxy_bilateral: float = 80.0,
              srgb: float = 13.0, compat_bilateral: float = 10.0,
              backend: Optional[str] = None) -> np.ndarray:
  """Refines per-pixel class probabilities with a dense CRF.

  Args:
    image: uint8 RGB [H, W, 3].
    probabilities: float [H, W, C] softmax probabilities.
    iterations: Mean-field iterations.
    sxy_gaussian: Spatial standard deviation of the smoothness kernel.
    compat_gaussian: Weight of the smoothness kernel.
    sxy_bilateral: Spatial standard deviation of the appearance kernel.
    srgb: Colour standard deviation of the appearance kernel.
    compat_bilateral: Weight of the appearance kernel.
    backend: `pydensecrf`, `numpy`, or None for pydensecrf when installed.

  Returns:
    float32 [H, W, C] refined probabilities.

  Raises:
    ValueError: on mismatched shapes or an unknown backend.
  """
  image = np.asarray(image, np.uint8)
  probabilities = np.asarray(probabilities, np.float32)
  if image.shape[:2] != probabilities.shape[:2] or image.shape[-1] != 3:
    raise ValueError(f"dense_crf: image {image.shape} and probabilities "
                     f"{probabilities.shape} differ in size.")
  if backend is None:
    backend = "pydensecrf" if _have_pydensecrf() else "numpy"
  args = (image, probabilities, iterations, sxy_gaussian, compat_gaussian,
          sxy_bilateral, srgb, compat_bilateral)
  if backend == "pydensecrf":
    return _pydensecrf(*args)
  if backend == "numpy":
    return _numpy_crf(*args)
  raise ValueError(f"Unknown CRF backend {backend!r}; expected 'pydensecrf' "
                   "or 'numpy'.")
