"""Image and label preprocessing, as official DeepLab's input_preprocess.

Training:
  1. cast the image to float32; optionally resize it to a size range (the
     label with nearest neighbour);
  2. scale randomly in [min_scale_factor, max_scale_factor], on a grid of
     `scale_factor_step_size` (label: nearest neighbour);
  3. pad to at least the crop size at the bottom and right: the image with
     the model variant's mean pixel (`ModelVariant.mean_pixel`, official
     `feature_extractor.mean_pixel`: what its preprocessing maps to 0), the
     label with the ignore label;
  4. take a random crop, the same window for image and label (they are
     concatenated into one tensor and cropped once);
  5. flip left-right with probability 0.5, both together.

Optional augmentations (`deeplab.datasets.augment`, all off by default) slot
in: colour jitter, blur and noise after step 2 (before padding, so padding
stays the mean pixel), rotation after them, GridMask after step 5.

Evaluation only resizes (if asked) and pads to the crop size, so the eval
crop must be at least as large as every image; a larger image fails with a
clear error.

Resizing to a size range aligns corners (bilinear for images, nearest
neighbour for labels), as official `preprocess_utils` does (TF1
`align_corners=True`): evaluation matches official pixel for pixel. The
random training scale keeps half-pixel centres (official aligns corners
there too; a sub-pixel shift of an augmentation).

All randomness is stateless, drawn from an optional `seed` [2], so that a
pipeline that passes per-example seeds is reproducible however it is
parallelised.
"""

from typing import Optional, Sequence, Tuple

import tensorflow as tf

from deeplab.core.config import AugmentParams
from deeplab.datasets import augment


def get_random_scale(min_scale_factor: float, max_scale_factor: float,
                     step_size: float, seed: tf.Tensor) -> tf.Tensor:
  """Draws a scale factor.

  Args:
    min_scale_factor: Smallest scale.
    max_scale_factor: Largest scale.
    step_size: Scales are drawn uniformly from min, min + step, ..., max;
      0 draws from the continuous range.
    seed: int [2] seed of the stateless draw.

  Returns:
    A float32 scalar.

  Raises:
    ValueError: if the range is invalid.
  """
  if min_scale_factor <= 0 or min_scale_factor > max_scale_factor:
    raise ValueError(
        f"Scale range [{min_scale_factor}, {max_scale_factor}] is invalid "
        "(--min_scale_factor must be > 0 and <= --max_scale_factor).")
  if min_scale_factor == max_scale_factor:
    return tf.constant(min_scale_factor, tf.float32)
  if step_size == 0:
    return tf.random.stateless_uniform(
        [], seed, minval=min_scale_factor, maxval=max_scale_factor)
  num_steps = int(round((max_scale_factor - min_scale_factor) / step_size)) + 1
  index = tf.random.stateless_uniform([], seed, minval=0, maxval=num_steps,
                                      dtype=tf.int32)
  scale = min_scale_factor + tf.cast(index, tf.float32) * step_size
  return tf.minimum(scale, max_scale_factor)


def _resize(image: tf.Tensor, label: Optional[tf.Tensor], size: tf.Tensor
            ) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
  """Resizes image (bilinear) and label (nearest neighbour) to `size`.

  With corners aligned, as official `preprocess_utils` (TF1 resize ops with
  align_corners=True) for both the random training scale and the resize to
  a range.
  """
  image = tf.raw_ops.ResizeBilinear(images=image[tf.newaxis], size=size,
                                    align_corners=True,
                                    half_pixel_centers=False)[0]
  if label is not None:
    label = tf.raw_ops.ResizeNearestNeighbor(
        images=label[tf.newaxis], size=size, align_corners=True,
        half_pixel_centers=False)[0]
  return image, label


def resize_to_range(image: tf.Tensor, label: Optional[tf.Tensor],
                    min_size: Optional[int],
                    max_size: Optional[int],
                    factor: Optional[int] = None):
  """Resizes so the short side is `min_size`, unless the long side would
  then exceed `max_size`, in which case the long side becomes `max_size`.

  With only `max_size`, images larger than it are shrunk and others kept.
  With `factor` (official `--resize_factor`), `max_size` first drops to the
  largest `factor * k + 1` not above it, and each new side is then rounded
  up to the next `factor * k + 1` (official `preprocess_utils.
  resize_to_range`), e.g. 16k+1 sides for feature maps aligned at stride 16.

  Args:
    image: float32 [H, W, 3].
    label: int32 [H, W, 1] or None.
    min_size: Target of the short side, or None.
    max_size: Bound of the long side, or None.
    factor: Optional positive int: sides become multiples of it plus one.

  Returns:
    (image, label) resized.
  """
  if max_size and factor:
    max_size = max_size - (max_size - 1) % factor
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  short_side, long_side = tf.reduce_min(shape), tf.reduce_max(shape)
  if min_size:
    # Official: the short side to min_size, unless the (floored) long side
    # would then exceed max_size: then the long side to max_size.
    size = tf.cast(tf.floor(shape * (float(min_size) / short_side)),
                   tf.int32)
    if max_size:
      small = tf.cast(tf.floor(shape * (float(max_size) / long_side)),
                      tf.int32)
      size = tf.cond(tf.reduce_max(size) > max_size, lambda: small,
                     lambda: size)
  else:
    scale = tf.minimum(1.0, float(max_size) / long_side)
    size = tf.cast(tf.floor(shape * scale), tf.int32)
  size = tf.maximum(size, 1)
  if factor:
    size += (factor - (size - 1) % factor) % factor
  return _resize(image, label, size)


def preprocess_image_and_label(image: tf.Tensor,
                               label: Optional[tf.Tensor],
                               crop_height: int,
                               crop_width: int,
                               min_resize_value: Optional[int] = None,
                               max_resize_value: Optional[int] = None,
                               min_scale_factor: float = 1.,
                               max_scale_factor: float = 1.,
                               scale_factor_step_size: float = 0,
                               ignore_label: int = 255,
                               is_training: bool = True,
                               flip: bool = True,
                               seed: Optional[tf.Tensor] = None,
                               image_name: Optional[tf.Tensor] = None,
                               augment_params: Optional[AugmentParams] = None,
                               mean_pixel: Optional[Sequence[float]] = None,
                               resize_factor: Optional[int] = None):
  """Preprocesses one image and its label (see the module docstring).

  Args:
    image: uint8 or float [H, W, 3].
    label: Integer [H, W, 1] class ids, or None (inference).
    crop_height: Height of the training crop / eval canvas.
    crop_width: Width of the training crop / eval canvas.
    min_resize_value: Optional: resize so the short side is this.
    max_resize_value: Optional: bound of the long side after resizing.
    min_scale_factor: Smallest random scale (training).
    max_scale_factor: Largest random scale (training).
    scale_factor_step_size: Grid of random scales; 0 for continuous.
    ignore_label: Label value of padded pixels.
    is_training: Random scale, crop and flip; otherwise only pad.
    flip: Random left-right flip (training).
    seed: Optional int32/int64 [2] seed for the random ops; None draws one.
    image_name: Optional string scalar naming the image in errors.
    augment_params: Optional extra training augmentations (rotation, colour
      jitter, blur, noise, GridMask); None applies none.
    mean_pixel: RGB value of padded (and rotated-in, masked) pixels: the
      model variant's `ModelVariant.mean_pixel`, which its preprocessing
      maps to 0. Required (ValueError when None).
    resize_factor: Optional official factor of `resize_to_range`.

  Returns:
    (image float32 [crop_height, crop_width, 3] in [0, 255] padded with
    `mean_pixel`, label int32 [crop_height, crop_width, 1] padded with
    `ignore_label`, or None).

  Raises:
    tf.errors.InvalidArgumentError: at run time in evaluation, if the
      (resized) image is larger than the crop.
  """
  if mean_pixel is None:
    raise ValueError("preprocess_image_and_label needs mean_pixel: the model "
                     "variant's ModelVariant.mean_pixel (DataConfig."
                     "mean_pixel).")
  mean_pixel = tf.constant(mean_pixel, tf.float32, shape=[3])
  image = tf.cast(image, tf.float32)
  label = None if label is None else tf.cast(label, tf.int32)
  if min_resize_value or max_resize_value:
    image, label = resize_to_range(image, label, min_resize_value,
                                   max_resize_value, resize_factor)

  if is_training:
    image, label, seeds = _scale_and_augment(
        image, label, seed, min_scale_factor, max_scale_factor,
        scale_factor_step_size, augment_params, ignore_label, mean_pixel)
  else:
    image = _check_fits(image, crop_height, crop_width, image_name)

  image, label = _pad_to_crop(image, label, crop_height, crop_width,
                              ignore_label, mean_pixel)
  if is_training:
    image, label = _crop_flip_and_mask(image, label, crop_height, crop_width,
                                       seeds, flip, augment_params,
                                       mean_pixel)

  image.set_shape([crop_height, crop_width, 3])
  if label is not None:
    label.set_shape([crop_height, crop_width, 1])
  return image, label


def _scale_and_augment(image, label, seed, min_scale_factor: float,
                       max_scale_factor: float, scale_factor_step_size: float,
                       augment_params: Optional[AugmentParams],
                       ignore_label: int, mean_pixel):
  """Random scale, then the optional augmentations before the crop.

  Returns:
    (image, label, (crop_seed, flip_seed, grid_seed)): the later steps'
    seeds, all split from `seed` (random when None).
  """
  if seed is None:
    seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
  scale_seed, crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=3))
  scale = get_random_scale(min_scale_factor, max_scale_factor,
                           scale_factor_step_size, scale_seed)
  if not (min_scale_factor == max_scale_factor == 1.0):
    size = tf.cast(tf.cast(tf.shape(image)[:2], tf.float32) * scale,
                   tf.int32)
    # Official randomly_scale_image_and_label: corners aligned.
    image, label = _resize(image, label, tf.maximum(size, 1))
  grid_seed = None
  if augment_params is not None:
    # Folded from the seed, so the draws of the steps above stay as they were.
    augment_seeds = tf.unstack(tf.random.experimental.stateless_split(
        tf.random.experimental.stateless_fold_in(seed, 7919), num=4))
    image, label = _augment_before_crop(image, label, augment_params,
                                        augment_seeds, ignore_label,
                                        mean_pixel)
    grid_seed = augment_seeds[3]
  return image, label, (crop_seed, flip_seed, grid_seed)


def _augment_before_crop(image, label, params: AugmentParams, seeds,
                         ignore_label: int, mean_pixel):
  """Colour jitter, blur and noise, and rotation: before the pad and crop."""
  jitter_seed, blur_seed, rotate_seed, _ = seeds
  if params.any_photometric:
    image = augment.color_jitter(image, params, jitter_seed)
    image = augment.random_blur_and_noise(image, params, blur_seed)
  if params.max_rotation_degrees:
    image, label = augment.random_rotate(
        image, label, params.max_rotation_degrees, ignore_label,
        rotate_seed, mean_pixel)
  return image, label


def _check_fits(image, crop_height: int, crop_width: int, image_name):
  """Evaluation only pads: an image larger than the canvas is an error."""
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  name = image_name if image_name is not None else tf.constant("")
  check = tf.debugging.Assert(
      tf.logical_and(height <= crop_height, width <= crop_width),
      [f"Evaluation only pads: every image must fit in the eval crop_size "
       f"{crop_height}x{crop_width} (height x width); raise crop_size. "
       "Image, height, width:", name, height, width])
  with tf.control_dependencies([check]):
    return tf.identity(image)


def _pad_to_crop(image, label, crop_height: int, crop_width: int,
                 ignore_label: int, mean_pixel):
  """Pads bottom and right to at least the crop (official pad_to_bounding_box)."""
  shape = tf.shape(image)
  pad_height = tf.maximum(crop_height - shape[0], 0)
  pad_width = tf.maximum(crop_width - shape[1], 0)
  paddings = [[0, pad_height], [0, pad_width], [0, 0]]
  # tf.pad takes one scalar: pad the mean-subtracted image with 0, as
  # official pad_to_bounding_box does.
  image = tf.pad(image - mean_pixel, paddings) + mean_pixel
  if label is not None:
    label = tf.pad(label, paddings, constant_values=ignore_label)
  return image, label


def _crop_flip_and_mask(image, label, crop_height: int, crop_width: int,
                        seeds, flip: bool,
                        augment_params: Optional[AugmentParams], mean_pixel):
  """The training crop and flip, then GridMask when asked for."""
  crop_seed, flip_seed, grid_seed = seeds
  image, label = _random_crop_and_flip(image, label, crop_height, crop_width,
                                       crop_seed, flip_seed if flip else None)
  if augment_params is not None and augment_params.gridmask_probability:
    image = augment.grid_mask(image, augment_params, grid_seed, mean_pixel)
  return image, label


def _random_crop_and_flip(image, label, crop_height: int, crop_width: int,
                          crop_seed, flip_seed):
  """One crop window and one flip for image and label (flip_seed None: none)."""
  # One stacked tensor, so that image and label share the window.
  if label is not None:
    stacked = tf.concat([image, tf.cast(label, tf.float32)], axis=-1)
  else:
    stacked = image
  channels = 4 if label is not None else 3
  stacked = tf.image.stateless_random_crop(
      stacked, [crop_height, crop_width, channels], seed=crop_seed)
  if flip_seed is not None:
    stacked = tf.image.stateless_random_flip_left_right(stacked, flip_seed)
  image = stacked[..., :3]
  if label is not None:
    label = tf.cast(tf.round(stacked[..., 3:]), tf.int32)
  return image, label
