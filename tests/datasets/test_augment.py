"""Augmentations keep image and label aligned and invent no label values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import model_variants
from deeplab.datasets import augment
from deeplab.datasets import input_pipeline
from deeplab.datasets import preprocess

IGNORE = 255
NUM_CLASSES = 5
# Fill value: a per-channel mean pixel (resnet_v1_50's ImageNet mean).
MEAN = model_variants.get_model_variant("resnet_v1_50").mean_pixel


def _block_image(seed=0, height=48, width=64, block=8):
  """Blocks of distinct colours; each colour belongs to one class, so the
  label is a function of the image's pixel values."""
  rng = np.random.default_rng(seed)
  rows, cols = height // block, width // block
  # Distinct colours, far from each other and from the mean pixel 127.5.
  levels = np.array([10., 40., 70., 100., 160., 190., 220., 250.])
  palette = np.stack(np.meshgrid(levels, levels, levels), -1).reshape(-1, 3)
  palette = palette[rng.permutation(len(palette))[:rows * cols]]
  classes = rng.integers(0, NUM_CLASSES, rows * cols)
  index = np.arange(rows * cols).reshape(rows, cols)
  index = np.kron(index, np.ones((block, block), np.int64))
  image = palette[index].astype(np.float32)
  label = classes[index].astype(np.int32)[..., None]
  return image, label, palette, classes


def _check_aligned(image, label, palette, classes, min_fraction):
  """Every pixel whose colour is exactly a palette colour carries that
  colour's class; labels hold only known ids and the ignore label."""
  image, label = np.asarray(image), np.asarray(label)[..., 0]
  assert set(np.unique(label)) <= set(range(NUM_CLASSES)) | {IGNORE}
  distance = np.abs(image[:, :, None, :] - palette[None, None]).max(-1)
  exact = distance.min(-1) < 1e-3
  expected = classes[distance.argmin(-1)]
  assert exact.mean() >= min_fraction
  np.testing.assert_array_equal(label[exact], expected[exact])
  # Mean-pixel fill (padding, rotated-in corners) is labelled ignore.
  fill = (np.abs(image - np.float32(MEAN)).max(-1) < 1e-3)
  assert (label[fill] == IGNORE).all()


@pytest.mark.parametrize("seed", range(4))
def test_every_geometric_transform_keeps_alignment(seed):
  image, label, palette, classes = _block_image(seed)
  params = config_lib.AugmentParams(max_rotation_degrees=30.)
  for crop in ((40, 40), (96, 112)):  # Crop inside, and pad beyond.
    out_image, out_label = preprocess.preprocess_image_and_label(
        image, label, crop[0], crop[1], min_scale_factor=0.5,
        max_scale_factor=2.0, scale_factor_step_size=0.25,
        ignore_label=IGNORE, is_training=True,
        seed=tf.constant([seed, 3]), augment_params=params, mean_pixel=MEAN)
    _check_aligned(out_image, out_label, palette, classes, 0.2)


def test_rotation_resize_to_range_and_scale_each_alone():
  image, label, palette, classes = _block_image(5)
  rotated = augment.random_rotate(tf.constant(image), tf.constant(label),
                                  45., IGNORE, tf.constant([1, 2]), MEAN)
  _check_aligned(*rotated, palette, classes, 0.4)
  resized = preprocess.resize_to_range(tf.constant(image),
                                       tf.constant(label), 37, 50)
  assert resized[0].shape[:2] == (37, 49)
  _check_aligned(*resized, palette, classes, 0.4)


def test_rotation_by_90_degrees_is_exact():
  label = np.arange(36, dtype=np.int32).reshape(6, 6, 1)
  transform = augment.rotation_transform(tf.constant(math.pi / 2), 6, 6)
  _, rotated = augment.apply_transform(
      tf.zeros([6, 6, 3]), tf.constant(label), transform, IGNORE, MEAN)
  np.testing.assert_array_equal(rotated.numpy()[..., 0],
                                np.rot90(label[..., 0], k=-1))


def test_zero_params_change_nothing_and_photometric_spares_label():
  image, label, _, _ = _block_image(1)
  args = dict(crop_height=40, crop_width=40, min_scale_factor=0.5,
              max_scale_factor=2., scale_factor_step_size=0.25,
              is_training=True, seed=tf.constant([4, 5]), mean_pixel=MEAN)
  base = preprocess.preprocess_image_and_label(image, label, **args)
  same = preprocess.preprocess_image_and_label(
      image, label, augment_params=config_lib.AugmentParams(), **args)
  np.testing.assert_array_equal(base[0], same[0])
  np.testing.assert_array_equal(base[1], same[1])
  jittered = preprocess.preprocess_image_and_label(
      image, label, augment_params=config_lib.AugmentParams(
          brightness_max_delta=0.2, contrast_max_delta=0.3,
          saturation_max_delta=0.3, hue_max_delta=0.1, blur_probability=1.,
          noise_stddev=5.), **args)
  np.testing.assert_array_equal(base[1], jittered[1])
  assert np.abs(base[0] - jittered[0]).mean() > 1.
  assert 0. <= float(tf.reduce_min(jittered[0]))
  assert float(tf.reduce_max(jittered[0])) <= 255.


def test_blur_keeps_constant_images_and_smooths_edges():
  flat = tf.fill([9, 9, 3], 200.)
  np.testing.assert_allclose(augment.gaussian_blur(flat, 1.0, 1.5), flat,
                             rtol=1e-5)
  step = np.zeros([9, 9, 3], np.float32)
  step[:, 5:] = 255.
  blurred = augment.gaussian_blur(tf.constant(step), 1.0, 1.5).numpy()
  assert 0. < blurred[4, 4, 0] < 255. and 0. < blurred[4, 5, 0] < 255.


def test_grid_mask_masks_squares_with_the_mean_pixel():
  image = tf.fill([64, 64, 3], 10.)
  params = config_lib.AugmentParams(gridmask_probability=1., gridmask_ratio=0.5,
                                 gridmask_min_period=16,
                                 gridmask_max_period=16)
  masked = augment.grid_mask(image, params, tf.constant([1, 1]),
                             MEAN).numpy()
  is_masked = masked[..., 0] == np.float32(MEAN[0])
  assert is_masked.mean() == pytest.approx(0.25)
  assert (masked[~is_masked] == 10.).all()
  # Squares of 8 on a period of 16.
  rows = np.nonzero(is_masked.any(1))[0]
  assert len(rows) == 32
  off = augment.grid_mask(image, config_lib.AugmentParams(),
                          tf.constant([1, 1]), MEAN)
  np.testing.assert_array_equal(off, image)


def test_out_of_range_params_name_the_flag():
  with pytest.raises(ValueError, match="--hue_max_delta"):
    config_lib.AugmentParams(hue_max_delta=0.7)


def test_pipeline_applies_config_augmentations(demo_tfrecords):
  config = config_lib.DataConfig(
      dataset="demo", dataset_dir=str(demo_tfrecords), split="train",
      batch_size=2, crop_size=(48, 48), deterministic=True,
      augment=config_lib.AugmentParams(
          max_rotation_degrees=20., brightness_max_delta=0.1,
          gridmask_probability=0.5, blur_probability=0.5, noise_stddev=2.))
  features, labels = next(iter(input_pipeline.make_dataset(config)))
  assert features["image"].shape == (2, 48, 48, 3)
  assert set(np.unique(labels.numpy())) <= set(range(5)) | {IGNORE}
  again = next(iter(input_pipeline.make_dataset(config)))
  np.testing.assert_array_equal(features["image"], again[0]["image"])
