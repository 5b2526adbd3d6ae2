"""The window-first fast path matches the full scale/pad/crop/flip pipeline.

Labels and padding exactly; images to a small fraction of a grey level
(`crop_window.resample`'s float arithmetic, positions pulled in by 2**-19
of the source size). Measured on the noise images here: max 0.040 of 255.
"""

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.config import DataConfig
from deeplab.core.modeling import model_variants
from deeplab.datasets import crop_window
from deeplab.datasets import input_pipeline
from deeplab.datasets import preprocess

# (min scale, max scale, step): the official grid, a continuous range,
# no scaling (the crop alone), and upscaling only.
# Padding: a per-channel mean pixel (resnet_v1_50's ImageNet mean).
MEAN = model_variants.get_model_variant("resnet_v1_50").mean_pixel
SCALES = [(0.5, 2.0, 0.25), (0.3, 1.7, 0.0), (1.0, 1.0, 0.0),
          (1.25, 2.0, 0.25)]
# Max |fast - full| image difference allowed (grey levels of 255).
IMAGE_ATOL = 0.1


def _assert_matches(got_image, got_label, want_image, want_label, trial,
                    padded=None):
  """Labels equal; `padded` pixels exactly the mean pixel; the image within
  IMAGE_ATOL."""
  np.testing.assert_array_equal(got_label, want_label, err_msg=str(trial))
  if padded is not None:
    np.testing.assert_array_equal(np.asarray(got_image)[padded],
                                  np.broadcast_to(np.float32(MEAN), (padded.sum(), 3)))
  np.testing.assert_allclose(got_image, want_image, rtol=0, atol=IMAGE_ATOL,
                             err_msg=str(trial))


@pytest.mark.parametrize("jpeg", [True, False])
def test_same_crop_as_the_full_pipeline(jpeg):
  rng = np.random.default_rng(7 + jpeg)
  padded_trials = 0
  for trial in range(12):
    height, width = (int(v) for v in rng.integers(24, 120, 2))
    # Crops smaller and larger than the image (padding) in turn.
    crop_height, crop_width = (int(v) for v in rng.integers(16, 140, 2))
    min_scale, max_scale, step = SCALES[trial % len(SCALES)]
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 6, (height, width, 1), dtype=np.uint8)
    encoded = (tf.io.encode_jpeg(image) if jpeg else
               tf.io.encode_png(image))  # Noise: the worst case for JPEG.
    seed = tf.constant(rng.integers(0, 2**31 - 1, 2), tf.int64)
    want_image, want_label = preprocess.preprocess_image_and_label(
        tf.io.decode_image(encoded, channels=3), label, crop_height,
        crop_width, min_scale_factor=min_scale, max_scale_factor=max_scale,
        scale_factor_step_size=step, ignore_label=255, seed=seed,
        mean_pixel=MEAN)
    example = {"encoded": encoded, "filename": tf.constant("x"),
               "label": tf.constant(label)}
    got_image, got_label, shape = crop_window.scale_crop_flip(
        example, crop_height, crop_width, min_scale, max_scale, step, 255,
        True, seed, MEAN)
    assert shape.numpy().tolist() == [height, width]
    # Labels are 0-5: 255 only where the full path padded.
    padded = np.asarray(want_label)[..., 0] == 255
    padded_trials += padded.any()
    _assert_matches(got_image, got_label, want_image, want_label, trial,
                    padded=padded)
  assert padded_trials >= 4


def test_realistic_size():
  """A 448x448 photo, 513x513 crops on the official scale grid."""
  photo = tf.io.decode_jpeg(tf.io.read_file(
      "../shared/fixtures/ade20k_sceneparsing/images/validation/"
      "ADE_val_00000001.jpg"), channels=3)
  photo = tf.cast(tf.image.resize(photo, [448, 448]), tf.uint8)
  encoded = tf.io.encode_jpeg(photo)
  label = tf.cast(photo[..., :1] // 40, tf.uint8)  # Regions of 0-6.
  example = {"encoded": encoded, "filename": tf.constant("x"),
             "label": label}
  for trial in range(4):
    seed = tf.constant([trial, 11])
    want = preprocess.preprocess_image_and_label(
        tf.io.decode_jpeg(encoded, channels=3), label, 513, 513,
        min_scale_factor=0.5, max_scale_factor=2.0,
        scale_factor_step_size=0.25, ignore_label=255, seed=seed,
        mean_pixel=MEAN)
    got = crop_window.scale_crop_flip(example, 513, 513, 0.5, 2.0, 0.25,
                                      255, True, seed, MEAN)[:2]
    _assert_matches(*got, *want, trial,
                    padded=np.asarray(want[1])[..., 0] == 255)


def test_size_mismatch_is_named():
  example = {"encoded": tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)),
             "filename": tf.constant("bad_one"),
             "label": tf.zeros((9, 8, 1), tf.uint8)}
  with pytest.raises(tf.errors.InvalidArgumentError, match="Label size"):
    crop_window.scale_crop_flip(example, 4, 4, 0.5, 2.0, 0.25, 255, True,
                                tf.constant([1, 2]), MEAN)


def test_pipeline_uses_it_and_matches_the_full_path(demo_tfrecords,
                                                    monkeypatch):
  config = DataConfig(dataset="demo", dataset_dir=str(demo_tfrecords),
                      split="train", batch_size=4, crop_size=(48, 80),
                      min_scale_factor=0.5, max_scale_factor=2.0,
                      scale_factor_step_size=0.25, shuffle_buffer=16,
                      deterministic=True, seed=3)
  assert crop_window.applies(config, None)
  fast = list(input_pipeline.make_dataset(config).take(2))
  monkeypatch.setattr(crop_window, "applies", lambda *args: False)
  full = list(input_pipeline.make_dataset(config).take(2))
  for (fast_features, fast_labels), (features, labels) in zip(fast, full):
    for key in ("height", "width", "filename"):
      np.testing.assert_array_equal(fast_features[key], features[key], key)
    _assert_matches(fast_features["image"], fast_labels[..., tf.newaxis],
                    features["image"], labels[..., tf.newaxis], "batch")
  assert fast[0][0]["image"].shape == (4, 48, 80, 3)
