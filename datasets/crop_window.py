"""Training scale + crop + flip computed in source coordinates (fast path).

Official DeepLab's `input_preprocess.py` (and `preprocess.py` here) scales
the whole image, pads it to the crop size and takes a random crop: at scale
2 most resized pixels are thrown away, and every JPEG is decoded in full.
Here the same draws, from the same per-example seed (scale on the same
grid, crop offset, flip: `preprocess.preprocess_image_and_label`'s order
and ops), pick the crop window first; only the source pixels under it are
decoded (`tf.image.decode_and_crop_jpeg` for JPEG) and resampled at the
sampling positions of official `preprocess_utils.randomly_scale_image_and_label`
(TF1 resize ops with corners aligned): the image by two 1-D bilinear
passes (`resample`; mirrored positions flip it), the label by
nearest-neighbour gathers. The result is the full pipeline's, padding
included (mean pixel / ignore label at the bottom and right, then the
flip): labels and padding exactly, images to a small fraction of a grey
level (`_SHRINK`).

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


# Source positions are pulled towards the image centre by this fraction:
# float rounding must not take the first or last row or column past the
# edge (it would be extrapolated, or clamped). It moves a
# position by at most 2**-20 of the source size (under 0.001 pixel on a
# 1000-pixel side): images differ from the full path by a small fraction
# of a grey level (tests/datasets/test_crop_window.py).
_SHRINK = 2.0**-19


def sampling(offset, crop: int, out_size, in_size):
  """Where the crop's pixels come from along one axis.

  A resize with corners aligned from `in_size` to `out_size` (TF's
  `ResizeBilinear` / `ResizeNearestNeighbor` with `align_corners=True`, as
  official `randomly_scale_image_and_label`): output pixel `offset + i`
  reads source position `(offset + i) * (in_size - 1) / (out_size - 1)`
  (here pulled in by `_SHRINK`).

  Returns:
    (first and last source positions of the crop's pixels inside the
    scaled image, float32 scalars; their count, `min(out_size - offset,
    crop)`; first and one-past-last source pixel they touch).
  """
  count = tf.minimum(out_size - offset, crop)
  scale = tf.math.divide_no_nan(tf.cast(in_size - 1, tf.float32),
                                tf.cast(out_size - 1, tf.float32))
  middle = tf.cast(in_size - 1, tf.float32) * (_SHRINK / 2)
  first, last = (tf.cast(offset + i, tf.float32) * scale * (1 - _SHRINK) +
                 middle for i in (0, count - 1))
  touched = (tf.cast(tf.floor(first), tf.int32),
             tf.minimum(tf.cast(tf.math.ceil(last), tf.int32),
                        in_size - 1) + 1)
  return tf.stack([first, last]), count, touched


def nearest(offset, count, out_size, in_size):
  """Source pixels of the `count` labels from `offset` (`sampling`'s resize,
  nearest neighbour in `ResizeNearestNeighbor`'s float32 arithmetic)."""
  scale = tf.math.divide_no_nan(tf.cast(in_size - 1, tf.float32),
                                tf.cast(out_size - 1, tf.float32))
  source = tf.cast(offset + tf.range(count), tf.float32) * scale
  # roundf (halves away from zero) on non-negative positions.
  return tf.minimum(tf.cast(tf.floor(source + 0.5), tf.int32), in_size - 1)


def _positions(ends, count, start):
  """`count` evenly spaced positions from `ends[0]` to `ends[1]` (source
  coordinates), relative to a window whose first pixel is `start`."""
  origin = tf.cast(start, tf.float32)
  first, last = ends[0] - origin, ends[1] - origin
  step = tf.math.divide_no_nan(last - first, tf.cast(count - 1, tf.float32))
  return first + tf.cast(tf.range(count), tf.float32) * step


def _lerp_rows(image, positions):
  """float32 rows of `image` linearly interpolated at `positions`."""
  last = tf.shape(image)[0] - 1
  floor = tf.floor(positions)
  low = tf.clip_by_value(tf.cast(floor, tf.int32), 0, last)
  high = tf.minimum(low + 1, last)
  weight = (positions - floor)[:, tf.newaxis, tf.newaxis]
  top = tf.cast(tf.gather(image, low), tf.float32)
  return top + (tf.cast(tf.gather(image, high), tf.float32) - top) * weight


def resample(window, start, rows, cols, size):
  """Bilinear resampling of `window` (whose first pixel is source pixel
  `start`) from source positions `rows` to `cols` ([first, last] each;
  last < first mirrors) to `size` pixels.

  Two 1-D passes, columns then rows (`ResizeBilinear`'s order): each
  gathers whole rows (of the transposed window for the columns) and
  interpolates them. About 25% faster than one `tf.image.crop_and_resize`
  at the same positions, which reads four pixels per output value
  (`bench/input_ops.py`: separable against crop_and_resize).
  """
  columns = _lerp_rows(tf.transpose(window, [1, 0, 2]),
                       _positions(cols, size[1], start[1]))
  return _lerp_rows(tf.transpose(columns, [1, 0, 2]),
                    _positions(rows, size[0], start[0]))


def gather_rows_and_columns(label, rows, cols):
  """`label[rows][:, cols]` as int32 [rows, cols, 1].

  Columns are gathered as the rows of the transposed label: a gather along
  axis 1 copies one byte per index, about 3x slower than two small
  transposes on this crop (`bench/input_ops.py`, label_gathers).
  """
  label = tf.transpose(tf.gather(label, rows))
  return tf.cast(tf.transpose(tf.gather(label, cols)), tf.int32)[..., None]


# Extra source pixels decoded around a JPEG window: libjpeg's chroma
# upsampling treats the edge of a cropped decode as the image edge, which
# changes the pixels next to it; one 16-pixel MCU away they are unchanged.
_JPEG_MARGIN = 16


def _decode_window(encoded, first, stop, shape, name):
  """uint8 image pixels around rows and columns [first, stop), and the
  source position of the window's first pixel."""

  def jpeg():
    check = tf.debugging.assert_equal(
        tf.image.extract_jpeg_shape(encoded)[:2], shape,
        message="Label size differs from image size in TFRecord example")
    start = tf.maximum(first - _JPEG_MARGIN, 0)
    end = tf.minimum(stop + _JPEG_MARGIN, shape)
    with tf.control_dependencies([check]):
      return tf.image.decode_and_crop_jpeg(
          encoded, tf.concat([start, end - start], axis=0), channels=3), start

  def other():
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(image)[:2], shape)),
        ["Label size differs from image size in TFRecord example", name])
    with tf.control_dependencies([check]):
      return tf.identity(image), tf.zeros([2], tf.int32)

  image, start = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
  image.set_shape([None, None, 3])
  return image, start


def scale_crop_flip(example: Dict[str, tf.Tensor], crop_height: int,
                    crop_width: int, min_scale_factor: float,
                    max_scale_factor: float, step_size: float,
                    ignore_label: int, flip: bool, seed: tf.Tensor,
                    mean_pixel: Sequence[float]
                    ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """`preprocess_image_and_label` (training, scale/crop/flip only).

  The pixels inside the scaled image are resampled (and flipped), then
  padded where the crop passes the scaled image.

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
  rows, row_count, row_span = sampling(offset[0], crop_height, size[0],
                                       shape[0])
  cols, col_count, col_span = sampling(offset[1], crop_width, size[1],
                                       shape[1])
  label_rows = nearest(offset[0], row_count, size[0], shape[0])
  label_cols = nearest(offset[1], col_count, size[1], shape[1])
  window, start = _decode_window(
      example["encoded"], tf.stack([row_span[0], col_span[0]]),
      tf.stack([row_span[1], col_span[1]]), shape, example["filename"])
  crop = tf.stack([row_count, col_count])
  # Padded at the bottom and right (preprocess: the variant's mean pixel,
  # the ignore label), then flipped: a mirrored box pads on the left.
  paddings = [tf.stack([0, crop_height - row_count]),
              tf.stack([0, crop_width - col_count]), tf.zeros([2], tf.int32)]
  if flip:  # tf.image.stateless_random_flip_left_right's draw.
    mirror = tf.random.stateless_uniform([], flip_seed, minval=0,
                                         maxval=1.0) < 0.5
    cols = tf.where(mirror, cols[::-1], cols)
    label_cols = tf.where(mirror, label_cols[::-1], label_cols)
    paddings[1] = tf.where(mirror, paddings[1][::-1], paddings[1])

  mean_pixel = tf.constant(mean_pixel, tf.float32, shape=[3])
  image = resample(window, start, rows, cols, crop)
  label = gather_rows_and_columns(label[..., 0], label_rows, label_cols)
  image, label = tf.cond(  # Most crops of a large enough scale do not pad.
      tf.reduce_all(crop == [crop_height, crop_width]),
      lambda: (image, label),
      lambda: (tf.pad(image - mean_pixel, paddings) + mean_pixel,
               tf.pad(label, paddings, constant_values=ignore_label)))
  image.set_shape([crop_height, crop_width, 3])
  label.set_shape([crop_height, crop_width, 1])
  return image, label, shape
