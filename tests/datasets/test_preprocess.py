"""Preprocessing: one crop and flip for image and label, padding values."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.modeling import model_variants
from deeplab.datasets import preprocess

# Padding takes the variant's mean pixel: 127.5 for the [-1, 1] variants,
# the ImageNet mean for resnet_v1_50 (official feature_extractor.mean_pixel).
UNIT = model_variants.get_model_variant("mobilenet_v2").mean_pixel
IMAGENET = model_variants.get_model_variant("resnet_v1_50").mean_pixel


def _coupled_example(height=20, width=30, seed=0):
  """An image whose label is a function of its pixels (label = R % 7), with
  G = column index and B = row index, so the crop window is readable."""
  rng = np.random.default_rng(seed)
  red = rng.integers(0, 250, (height, width))
  cols = np.broadcast_to(np.arange(width), (height, width))
  rows = np.broadcast_to(np.arange(height)[:, None], (height, width))
  image = np.stack([red, cols, rows], axis=-1).astype(np.uint8)
  label = (red % 7).astype(np.uint8)[..., None]
  return image, label


def test_train_crop_and_flip_are_shared():
  image, label = _coupled_example()
  flips = set()
  for i in range(40):
    out_image, out_label = preprocess.preprocess_image_and_label(
        image, label, 24, 24, ignore_label=255, is_training=True,
        seed=tf.constant([i, 7]), mean_pixel=UNIT)
    out_image, out_label = out_image.numpy(), out_label.numpy()[..., 0]
    assert out_image.shape == (24, 24, 3) and out_image.dtype == np.float32
    assert out_label.shape == (24, 24)
    valid = out_label != 255
    # Height 20 < 24 is padded: 4 rows of void, image 127.5 there.
    assert (~valid).sum() == 4 * 24
    np.testing.assert_array_equal(out_image[~valid], 127.5)
    np.testing.assert_array_equal(out_label[valid],
                                  out_image[..., 0][valid] % 7)
    steps = np.diff(out_image[0, :, 1])
    assert (steps == 1).all() or (steps == -1).all()  # One contiguous window.
    flips.add(bool(steps[0] < 0))
  assert flips == {True, False}


def test_train_with_random_scale_keeps_alignment():
  # 8x8-pixel blocks of one colour: label = block class, R = 40 * class.
  rng = np.random.default_rng(3)
  classes = rng.integers(0, 6, (5, 6)).repeat(8, 0).repeat(8, 1)
  image = np.stack([classes * 40, classes * 0 + 9, classes * 0 + 9], -1)
  label = classes.astype(np.uint8)[..., None]
  scales = set()
  for i in range(20):
    out_image, out_label = preprocess.preprocess_image_and_label(
        image.astype(np.uint8), label, 36, 36, min_scale_factor=0.5,
        max_scale_factor=2.0, scale_factor_step_size=0.25, is_training=True,
        seed=tf.constant([i, 1]), mean_pixel=UNIT)
    out_image, out_label = out_image.numpy(), out_label.numpy()[..., 0]
    valid = out_label != 255
    scales.add(int(valid.sum()))
    # Bilinear image vs nearest-neighbour label: they differ only where the
    # image blends two blocks, right at block edges.
    agree = np.round(out_image[..., 0] / 40.0) == out_label
    assert agree[valid].mean() > 0.9, i
    assert (out_image[~valid] == 127.5).all()
  assert len(scales) > 2  # The scale did vary.


def test_random_scale_is_on_the_grid():
  grid = {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}
  drawn = {float(preprocess.get_random_scale(0.5, 2.0, 0.25,
                                             tf.constant([i, 0])))
           for i in range(200)}
  assert drawn == grid
  assert float(preprocess.get_random_scale(1.0, 1.0, 0.25,
                                           tf.constant([0, 0]))) == 1.0
  with pytest.raises(ValueError, match="min_scale_factor"):
    preprocess.get_random_scale(2.0, 1.0, 0.25, tf.constant([0, 0]))


def test_eval_only_pads_with_the_variants_mean_pixel():
  image, label = _coupled_example(20, 30)
  out_image, out_label = preprocess.preprocess_image_and_label(
      image, label, 32, 40, ignore_label=0, is_training=False,
      mean_pixel=IMAGENET)
  out_image, out_label = out_image.numpy(), out_label.numpy()[..., 0]
  np.testing.assert_array_equal(out_image[:20, :30], image)
  np.testing.assert_array_equal(out_label[:20, :30], label[..., 0])
  mean = np.float32(IMAGENET)
  assert (out_image[20:] == mean).all() and (out_image[:, 30:] == mean).all()
  assert (out_label[20:] == 0).all() and (out_label[:, 30:] == 0).all()
  assert out_label.dtype == np.int32


def test_eval_rejects_image_larger_than_crop():
  image, label = _coupled_example(20, 30)
  with pytest.raises(tf.errors.InvalidArgumentError, match="crop_size 16x40"):
    preprocess.preprocess_image_and_label(image, label, 16, 40,
                                          is_training=False, mean_pixel=UNIT)
  with pytest.raises(ValueError, match="mean_pixel"):
    preprocess.preprocess_image_and_label(image, label, 32, 40,
                                          is_training=False)


def test_resize_to_range():
  image = tf.zeros([20, 40, 3])
  label = tf.zeros([20, 40, 1], tf.int32)
  out, out_label = preprocess.resize_to_range(image, label, 30, None)
  assert out.shape == (30, 60, 3) and out_label.shape == (30, 60, 1)
  out, _ = preprocess.resize_to_range(image, label, 30, 50)
  assert out.shape == (25, 50, 3)
  out, _ = preprocess.resize_to_range(image, None, None, 100)
  assert out.shape == (20, 40, 3)
  # Official: the long side is checked after flooring. 67 * 30 / 20 = 100.5
  # floors to 100 <= max 100, so the short side reaches 30 (not 29).
  out, _ = preprocess.resize_to_range(tf.zeros([20, 67, 3]), None, 30, 100)
  assert out.shape == (30, 100, 3)


# (height, width), min, max, factor -> size, as computed by official
# research/deeplab/core/preprocess_utils.resize_to_range(..., factor=...)
# run in the oracle venv (.venv-official, TF 2.15): max_size drops to
# max - (max - 1) % factor, then sides round up to factor * k + 1.
_OFFICIAL_RESIZE_FACTOR_CASES = [
    ((20, 30), 30, None, 16, (33, 49)),
    ((20, 30), 30, 50, 16, (33, 49)),
    ((100, 67), 60, 90, 16, (81, 65)),
    ((33, 33), 40, 60, 8, (41, 41)),
    ((500, 375), 513, 513, 16, (513, 385)),
    ((375, 500), 400, 513, 16, (385, 513)),
    ((17, 9), 10, None, 4, (21, 13)),
    ((7, 200), 20, 100, 10, (11, 91)),
]


@pytest.mark.parametrize("shape,min_size,max_size,factor,expected",
                         _OFFICIAL_RESIZE_FACTOR_CASES)
def test_resize_to_range_with_factor_matches_official(shape, min_size,
                                                      max_size, factor,
                                                      expected):
  label = tf.zeros([*shape, 1], tf.int32)
  out, out_label = preprocess.resize_to_range(
      tf.zeros([*shape, 3]), label, min_size, max_size, factor)
  assert tuple(out.shape[:2]) == expected
  assert tuple(out_label.shape[:2]) == expected


def test_resize_factor_reaches_the_pipeline():
  """--resize_factor travels from preprocess_image_and_label (eval: the
  resized image is padded to the crop, so its valid region is 33x49)."""
  image, label = _coupled_example(20, 30)
  _, out_label = preprocess.preprocess_image_and_label(
      image, label, 64, 64, min_resize_value=30, max_resize_value=50,
      is_training=False, mean_pixel=UNIT, resize_factor=16)
  valid = out_label.numpy()[..., 0] != 255
  assert valid.any(axis=1).sum() == 33 and valid.any(axis=0).sum() == 49


def test_resize_aligns_corners():
  """Official preprocess_utils resizes with align_corners=True: corner
  pixels are kept and a linear ramp stays exactly linear."""
  ramp = tf.constant(np.arange(5, dtype=np.float32)[None, :, None]
                     * np.ones([3, 1, 3], np.float32))
  out, _ = preprocess.resize_to_range(ramp, None, 5, None)  # 3x5 -> 5x8
  np.testing.assert_allclose(out.numpy()[0, :, 0], np.linspace(0, 4, 8),
                             atol=1e-6)


def test_random_scale_resizes_like_official_preprocess_utils():
  """Official randomly_scale_image_and_label: TF1 resize_bilinear and
  resize_nearest_neighbor with align_corners=True."""
  rng = np.random.default_rng(5)
  image = rng.integers(0, 256, (10, 14, 3)).astype(np.uint8)
  label = rng.integers(0, 5, (10, 14, 1)).astype(np.uint8)
  out_image, out_label = preprocess.preprocess_image_and_label(
      image, label, 15, 21, min_scale_factor=1.5, max_scale_factor=1.5,
      scale_factor_step_size=0, is_training=True, flip=False,
      seed=tf.constant([1, 2]), mean_pixel=UNIT)
  expected_image = tf.compat.v1.image.resize_bilinear(
      image[None].astype(np.float32), [15, 21], align_corners=True)[0]
  expected_label = tf.compat.v1.image.resize_nearest_neighbor(
      label[None], [15, 21], align_corners=True)[0]
  np.testing.assert_allclose(out_image, expected_image, atol=1e-4)
  np.testing.assert_array_equal(out_label, expected_label)
