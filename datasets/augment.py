"""Training augmentations beyond official DeepLab's scale/crop/flip.

Each is off by default and switched on by a field of
`deeplab.core.config.AugmentParams` (`DataConfig.augment`, and its train.py
flag). Geometric ones transform image and label with the same
sampling grid (image bilinear, label nearest neighbour, out-of-image pixels
filled with the model variant's mean pixel and the ignore label), so the
label stays aligned
and no new label value appears; photometric ones touch the image only.

  rotation      uniform angle in [-max_rotation_degrees, max_rotation_degrees],
                through `tf.raw_ops.ImageProjectiveTransformV3` (no
                tensorflow-addons)
  jitter        brightness, contrast, saturation, hue (`tf.image` stateless)
  blur          Gaussian, sigma uniform in [0.1, blur_max_sigma]
  noise         additive Gaussian, `noise_stddev` in pixel units
  GridMask      Chen et al. 2020, "GridMask Data Augmentation": squares of
                side `ratio * d` on a grid of random period d and offset
                are set to the mean pixel; the label is kept

Images are float32 in [0, 255] here; all draws are stateless, from a seed.
"""

import math
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from deeplab.core.config import AugmentParams


def _seeds(seed: tf.Tensor, num: int):
  return tf.unstack(tf.random.experimental.stateless_split(seed, num=num))


# === Geometric ===


def rotation_transform(angle: tf.Tensor, height: tf.Tensor,
                       width: tf.Tensor) -> tf.Tensor:
  """float32 [1, 8] projective transform rotating about the image center.

  It maps output pixel (x, y) to the input point it samples, as
  `ImageProjectiveTransformV3` expects.
  """
  cos, sin = tf.cos(angle), tf.sin(angle)
  cx = (tf.cast(width, tf.float32) - 1.) / 2.
  cy = (tf.cast(height, tf.float32) - 1.) / 2.
  return tf.reshape(tf.stack([
      cos, sin, cx - cos * cx - sin * cy,
      -sin, cos, cy + sin * cx - cos * cy,
      0., 0.]), [1, 8])


def apply_transform(image: tf.Tensor, label: Optional[tf.Tensor],
                    transform: tf.Tensor, ignore_label: int,
                    mean_pixel: Sequence[float]
                    ) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
  """Warps image (bilinear, mean fill) and label (nearest, ignore fill).

  Args:
    image: float32 [H, W, 3].
    label: int32 [H, W, 1] or None.
    transform: float32 [1, 8] output -> input projective transform.
    ignore_label: Fill value of the label.
    mean_pixel: RGB fill value of the image (`ModelVariant.mean_pixel`).
  """
  shape = tf.shape(image)[:2]
  # The op fills with one scalar: warp the mean-subtracted image, fill 0.
  mean_pixel = tf.cast(mean_pixel, tf.float32)
  image = tf.raw_ops.ImageProjectiveTransformV3(
      images=(image - mean_pixel)[tf.newaxis], transforms=transform,
      output_shape=shape, fill_value=0., interpolation="BILINEAR",
      fill_mode="CONSTANT")[0] + mean_pixel
  if label is not None:
    label = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(label, tf.int32)[tf.newaxis], transforms=transform,
        output_shape=shape, fill_value=float(ignore_label),
        interpolation="NEAREST", fill_mode="CONSTANT")[0]
  return image, label


def random_rotate(image, label, max_degrees: float, ignore_label: int,
                  seed: tf.Tensor, mean_pixel: Sequence[float]):
  """Rotates image and label by one uniform angle in [-max, max] degrees."""
  angle = tf.random.stateless_uniform(
      [], seed, minval=-max_degrees, maxval=max_degrees) * (math.pi / 180.)
  shape = tf.shape(image)
  return apply_transform(image, label,
                         rotation_transform(angle, shape[0], shape[1]),
                         ignore_label, mean_pixel)


# === Photometric (image only) ===


def color_jitter(image: tf.Tensor, params: AugmentParams,
                 seed: tf.Tensor) -> tf.Tensor:
  """Brightness, contrast, saturation and hue jitter of a [0, 255] image."""
  seeds = _seeds(seed, 4)
  x = image / 255.
  if params.brightness_max_delta:
    x = tf.image.stateless_random_brightness(
        x, params.brightness_max_delta, seeds[0])
  if params.contrast_max_delta:
    x = tf.image.stateless_random_contrast(
        x, 1. - params.contrast_max_delta, 1. + params.contrast_max_delta,
        seeds[1])
  if params.saturation_max_delta:
    x = tf.image.stateless_random_saturation(
        tf.clip_by_value(x, 0., 1.), 1. - params.saturation_max_delta,
        1. + params.saturation_max_delta, seeds[2])
  if params.hue_max_delta:
    x = tf.image.stateless_random_hue(tf.clip_by_value(x, 0., 1.),
                                      params.hue_max_delta, seeds[3])
  return tf.clip_by_value(x, 0., 1.) * 255.


def gaussian_blur(image: tf.Tensor, sigma: tf.Tensor,
                  max_sigma: float) -> tf.Tensor:
  """Separable Gaussian blur; normalised at the borders (no dark rim)."""
  radius = max(1, int(math.ceil(3. * max_sigma)))
  x = tf.range(-radius, radius + 1, dtype=tf.float32)
  kernel = tf.exp(-0.5 * tf.square(x / sigma))
  kernel /= tf.reduce_sum(kernel)
  rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 4, 1])
  cols = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 4, 1])
  ones = tf.ones_like(image[..., :1])
  x4 = tf.concat([image, ones], axis=-1)[tf.newaxis]
  x4 = tf.nn.depthwise_conv2d(x4, rows, [1, 1, 1, 1], "SAME")
  x4 = tf.nn.depthwise_conv2d(x4, cols, [1, 1, 1, 1], "SAME")[0]
  return x4[..., :3] / x4[..., 3:]


def random_blur_and_noise(image: tf.Tensor, params: AugmentParams,
                          seed: tf.Tensor) -> tf.Tensor:
  """Gaussian blur with probability `blur_probability`, then noise."""
  blur_seed, sigma_seed, noise_seed = _seeds(seed, 3)
  if params.blur_probability:
    sigma = tf.random.stateless_uniform(
        [], sigma_seed, minval=min(0.1, params.blur_max_sigma),
        maxval=params.blur_max_sigma)
    apply = tf.random.stateless_uniform([], blur_seed) < (
        params.blur_probability)
    image = tf.cond(
        apply, lambda: gaussian_blur(image, sigma, params.blur_max_sigma),
        lambda: image)
  if params.noise_stddev:
    noise = tf.random.stateless_normal(tf.shape(image), noise_seed,
                                       stddev=params.noise_stddev)
    image = tf.clip_by_value(image + noise, 0., 255.)
  return image


def grid_mask(image: tf.Tensor, params: AugmentParams,
              seed: tf.Tensor, mean_pixel: Sequence[float]) -> tf.Tensor:
  """GridMask (Chen et al. 2020): mean-pixel squares on a random grid.

  With probability `gridmask_probability`, draws a period d in
  [min_period, max_period] and offsets in [0, d); pixels whose row and
  column both fall in the first `round(ratio * d)` of their period are set
  to the mean pixel (0 after the model's scaling). The label is unchanged.
  """
  apply_seed, period_seed, offset_seed = _seeds(seed, 3)
  period = tf.random.stateless_uniform(
      [], period_seed, minval=params.gridmask_min_period,
      maxval=params.gridmask_max_period + 1, dtype=tf.int32)
  side = tf.maximum(tf.cast(tf.round(
      params.gridmask_ratio * tf.cast(period, tf.float32)), tf.int32), 1)
  offsets = tf.random.stateless_uniform([2], offset_seed, minval=0,
                                        maxval=tf.int32.max, dtype=tf.int32)
  offsets = offsets % period
  shape = tf.shape(image)
  rows = (tf.range(shape[0]) + offsets[0]) % period < side
  cols = (tf.range(shape[1]) + offsets[1]) % period < side
  masked = tf.logical_and(rows[:, tf.newaxis], cols[tf.newaxis, :])
  apply = tf.random.stateless_uniform([], apply_seed) < (
      params.gridmask_probability)
  masked = tf.logical_and(masked, apply)
  mean_pixel = tf.broadcast_to(tf.cast(mean_pixel, image.dtype),
                               tf.shape(image))
  return tf.where(masked[..., tf.newaxis], mean_pixel, image)
