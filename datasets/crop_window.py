"""Training scale + crop + flip computed in source coordinates (fast path).

Official DeepLab's `input_preprocess.py` (and `preprocess.py` here) scales
the whole image, pads it to the crop size and takes a random crop: at scale
2 most resized pixels are thrown away, and every JPEG is decoded in full.
Here the same draws, from the same per-example seed (scale on the same
grid, crop offset, flip: `preprocess.preprocess_image_and_label`'s order
and ops), pick the crop window first; only the source pixels under it are
decoded (`tf.image.decode_and_crop_jpeg` for JPEG) and resampled at the
sampling positions of official `preprocess_utils.randomly_scale_image_and_label`
(TF1 resize ops with corners aligned: bilinear for the image, nearest for
the label). The result is the full pipeline's,
padding included (mean pixel / ignore label at the bottom and right):
labels exactly, images to float rounding, and exactly at scale 1.

It applies when training preprocessing is scale/crop/flip only (no resize
to a range, no extra `AugmentParams`): see `applies`.
"""

from typing import Dict, Sequence, Tuple

import tensorflow as tf

from deeplab.datasets import preprocess
from deeplab.datasets import tfrecord_io

_FEATURES = {
    tfrecord_io.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    tfrecord_io.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string,
                                                      default_value=""),
    tfrecord_io.LABEL_ENCODED: tf.io.FixedLenFeature([], tf.string),
}


def applies(config, augment_params) -> bool:
  """Whether `config`'s preprocessing is scale/crop/flip only (training)."""
  return bool(config.is_training and augment_params is None and
              not config.min_resize_value and not config.max_resize_value)


def parse_encoded(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Parses one Example without decoding its image (decoded per window)."""
  parsed = tf.io.parse_single_example(serialized, _FEATURES)
  return {"encoded": parsed[tfrecord_io.IMAGE_ENCODED],
          "filename": parsed[tfrecord_io.IMAGE_FILENAME],
          "label": tf.io.decode_png(parsed[tfrecord_io.LABEL_ENCODED],
                                    channels=1)}


def draw_window(height, width, crop_height: int, crop_width: int,
                min_scale_factor: float, max_scale_factor: float,
                step_size: float, seed: tf.Tensor):
  """The draws of `preprocess_image_and_label`, without touching pixels.

  Returns:
    (scaled size int32 [2], crop offset int32 [2] in the scaled and padded
    image, flip seed).
  """
  scale_seed, crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=3))
  size = tf.stack([height, width])
  if not min_scale_factor == max_scale_factor == 1.0:
    scale = preprocess.get_random_scale(min_scale_factor, max_scale_factor,
                                        step_size, scale_seed)
    size = tf.maximum(tf.cast(tf.cast(size, tf.float32) * scale, tf.int32),
                      1)
  crop = tf.constant([crop_height, crop_width])
  # tf.image.stateless_random_crop's draw on the padded [h, w, c] stack.
  limit = tf.concat([tf.maximum(size, crop) - crop + 1, [1]], axis=0)
  offset = tf.random.stateless_uniform(
      [3], crop_seed, maxval=tf.int32.max, dtype=tf.int32) % limit
  return size, offset[:2], flip_seed


def sampling(offset, crop: int, out_size, in_size):
  """Source positions of the crop's output pixels along one axis.

  A resize with corners aligned from `in_size` to `out_size` (TF's
  `ResizeBilinear` / `ResizeNearestNeighbor` with `align_corners=True`, in
  their float32 arithmetic); only the `min(out_size - offset, crop)`
  positions inside the image.

  Returns:
    (lower, upper, lerp) of bilinear sampling and `nearest`, each [n].
  """
  count = tf.minimum(out_size - offset, crop)
  scale = tf.math.divide_no_nan(tf.cast(in_size - 1, tf.float32),
                                tf.cast(out_size - 1, tf.float32))
  source = tf.cast(offset + tf.range(count), tf.float32) * scale
  floor = tf.floor(source)
  lower = tf.maximum(tf.cast(floor, tf.int32), 0)
  upper = tf.minimum(tf.cast(tf.math.ceil(source), tf.int32), in_size - 1)
  # roundf (halves away from zero) on non-negative positions.
  nearest = tf.minimum(tf.cast(tf.floor(source + 0.5), tf.int32), in_size - 1)
  return lower, upper, source - floor, nearest


def _bilinear(window, rows, cols):
  """`tf.image.resize` bilinear arithmetic at the given (window) positions."""
  (top, bottom, y_lerp), (left, right, x_lerp) = rows, cols
  x_lerp = x_lerp[tf.newaxis, :, tf.newaxis]
  upper_rows, lower_rows = (tf.gather(window, top), tf.gather(window, bottom))
  top_left, top_right = (tf.gather(upper_rows, left, axis=1),
                         tf.gather(upper_rows, right, axis=1))
  bottom_left, bottom_right = (tf.gather(lower_rows, left, axis=1),
                               tf.gather(lower_rows, right, axis=1))
  top_row = top_left + (top_right - top_left) * x_lerp
  bottom_row = bottom_left + (bottom_right - bottom_left) * x_lerp
  return top_row + (bottom_row - top_row) * y_lerp[:, tf.newaxis, tf.newaxis]


# Extra source pixels decoded around a JPEG window: libjpeg's chroma
# upsampling treats the edge of a cropped decode as the image edge, which
# changes the pixels next to it; one 16-pixel MCU away they are unchanged.
_JPEG_MARGIN = 16


def _decode_window(encoded, first, stop, shape, name):
  """float32 image pixels [first, stop) of rows and columns."""

  def jpeg():
    check = tf.debugging.assert_equal(
        tf.image.extract_jpeg_shape(encoded)[:2], shape,
        message="Label size differs from image size in TFRecord example")
    start = tf.maximum(first - _JPEG_MARGIN, 0)
    end = tf.minimum(stop + _JPEG_MARGIN, shape)
    with tf.control_dependencies([check]):
      image = tf.image.decode_and_crop_jpeg(
          encoded, tf.concat([start, end - start], axis=0), channels=3)
    inner = first - start
    return image[inner[0]:inner[0] + stop[0] - first[0],
                 inner[1]:inner[1] + stop[1] - first[1]]

  def other():
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], shape)),
        ["Label size differs from image size in TFRecord example", name])
    with tf.control_dependencies([check]):
      return image[first[0]:stop[0], first[1]:stop[1]]

  image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
  image.set_shape([None, None, 3])
  return tf.cast(image, tf.float32)


def scale_crop_flip(example: Dict[str, tf.Tensor], crop_height: int,
                    crop_width: int, min_scale_factor: float,
                    max_scale_factor: float, step_size: float,
                    ignore_label: int, flip: bool, seed: tf.Tensor,
                    mean_pixel: Sequence[float]
                    ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """`preprocess_image_and_label` (training, scale/crop/flip only).

  Args:
    example: From `parse_encoded`.
    crop_height, crop_width: Training crop.
    min_scale_factor, max_scale_factor, step_size: The random scale grid.
    ignore_label: Label of padded pixels.
    flip: Random left-right flip.
    seed: int [2] per-example seed, as the full pipeline gets it.
    mean_pixel: RGB padding, the model variant's `ModelVariant.mean_pixel`.

  Returns:
    (image float32 [crop_height, crop_width, 3], label int32
    [crop_height, crop_width, 1], source shape int32 [2]).
  """
  label = example["label"]
  shape = tf.shape(label)[:2]
  size, offset, flip_seed = draw_window(
      shape[0], shape[1], crop_height, crop_width, min_scale_factor,
      max_scale_factor, step_size, seed)
  rows = sampling(offset[0], crop_height, size[0], shape[0])
  cols = sampling(offset[1], crop_width, size[1], shape[1])
  first = tf.stack([tf.minimum(rows[0][0], rows[3][0]),
                    tf.minimum(cols[0][0], cols[3][0])])
  stop = tf.stack([tf.maximum(rows[1][-1], rows[3][-1]),
                   tf.maximum(cols[1][-1], cols[3][-1])]) + 1
  window = _decode_window(example["encoded"], first, stop, shape,
                          example["filename"])
  image = _bilinear(window, (rows[0] - first[0], rows[1] - first[0], rows[2]),
                    (cols[0] - first[1], cols[1] - first[1], cols[2]))
  label = tf.gather(tf.gather(tf.cast(label, tf.int32), rows[3]), cols[3],
                    axis=1)
  valid = tf.shape(label)[:2]
  paddings = [[0, crop_height - valid[0]], [0, crop_width - valid[1]], [0, 0]]
  # Padded with the variant's mean pixel, as preprocess does.
  mean_pixel = tf.constant(mean_pixel, tf.float32, shape=[3])
  image = tf.pad(image - mean_pixel, paddings) + mean_pixel
  label = tf.pad(label, paddings, constant_values=ignore_label)
  if flip:  # tf.image.stateless_random_flip_left_right's draw.
    mirror = tf.random.stateless_uniform([], flip_seed, minval=0,
                                         maxval=1.0) < 0.5
    image, label = tf.cond(
        mirror, lambda: (tf.reverse(image, [1]), tf.reverse(label, [1])),
        lambda: (image, label))
  image.set_shape([crop_height, crop_width, 3])
  label.set_shape([crop_height, crop_width, 1])
  return image, label, shape
