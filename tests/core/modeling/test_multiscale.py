"""Multi-scale + flip inference averages the softmax, as official DeepLab."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import multiscale
from deeplab.core.training import model_fn as model_fn_lib
from testing_utils import make_predictions_nontrivial


def _column_model(images, training=False):
  """Logits that depend on the column: class 0 left, class 1 right."""
  del training
  width = tf.shape(images)[2]
  ramp = tf.cast(tf.range(width), tf.float32) / tf.cast(width - 1, tf.float32)
  ramp = tf.broadcast_to(ramp[None, None, :, None],
                         tf.concat([tf.shape(images)[:3], [1]], 0))
  return tf.concat([4.0 * (1.0 - ramp), 4.0 * ramp], axis=-1)


def test_single_pass_is_the_model_softmax():
  images = tf.random.uniform([2, 9, 13, 3], 0, 255)
  probabilities, logits = multiscale.predict(_column_model, images)
  np.testing.assert_allclose(logits, _column_model(images), atol=1e-6)
  np.testing.assert_allclose(probabilities, tf.nn.softmax(logits), atol=1e-6)


def test_flip_averages_the_mirrored_prediction():
  images = tf.zeros([1, 5, 11, 3])
  probabilities, _ = multiscale.predict(_column_model, images,
                                        add_flipped_images=True)
  single, _ = multiscale.predict(_column_model, images)
  # Averaging a ramp with its mirror image gives 0.5 everywhere.
  np.testing.assert_allclose(probabilities, 0.5, atol=1e-6)
  expected = (single + tf.reverse(single, [2])) / 2
  np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_scales_are_averaged_at_the_input_size():
  images = tf.random.uniform([1, 37, 45, 3], 0, 255)
  scales = (0.5, 0.75, 1.0, 1.25)
  probabilities, logits = multiscale.predict(_column_model, images, scales)
  assert probabilities.shape == (1, 37, 45, 2)
  np.testing.assert_allclose(tf.reduce_sum(probabilities, -1), 1.0, atol=1e-5)
  np.testing.assert_allclose(tf.nn.softmax(logits), probabilities, atol=1e-5)
  # Each scale's resized ramp is the same align-corners ramp, so the average
  # equals the single-scale prediction.
  single, _ = multiscale.predict(_column_model, images)
  np.testing.assert_allclose(probabilities, single, atol=1e-5)


def test_flip_with_a_real_model_is_mirror_symmetric(tiny_model_config):
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (1, 33, 41, 3)).astype(np.float32)
  model = make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(tiny_model_config), images)
  scales = (0.75, 1.0)
  forward, _ = multiscale.predict(model, images, scales, True)
  mirrored, _ = multiscale.predict(model, images[:, :, ::-1], scales, True)
  # Equal up to float rounding of the convolutions (oneDNN: ~1e-3), which a
  # near-tie can amplify at a few pixels; a flip that is not averaged back
  # would differ everywhere.
  difference = np.abs(forward - mirrored.numpy()[:, :, ::-1])
  assert difference.mean() < 1e-4
  assert np.mean(difference > 3e-3) < 1e-3
  single, _ = multiscale.predict(model, images)
  assert not np.allclose(forward, single, atol=1e-3)


def test_model_fn_eval_uses_the_scales(tiny_model_config):
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 255, (2, 33, 33, 3)).astype(np.float32)
  model = make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(tiny_model_config), images)
  labels = rng.integers(0, 3, (2, 33, 33)).astype(np.int32)
  params = model_fn_lib.ModelFnParams(
      model=model, num_classes=3, ignore_label=255,
      eval_scales=(0.5, 1.0), add_flipped_images=True)
  spec = model_fn_lib.model_fn({"image": images}, labels,
                               model_fn_lib.ModeKeys.EVAL, params)
  expected, _ = multiscale.predict(model, images, (0.5, 1.0), True)
  np.testing.assert_array_equal(spec.predictions["semantic"],
                                np.argmax(expected, -1))
  assert int(spec.metric_updates["confusion_matrix"].numpy().sum()) == 2 * 33 * 33
  assert np.isfinite(float(spec.loss))


@pytest.mark.parametrize("scales", [[], [0.5, 0.0], ["x"]])
def test_bad_scales_name_the_flag(scales):
  with pytest.raises(ValueError, match="--inference_scales"):
    multiscale.validate_scales(scales, "inference_scales")


def test_our_models_resize_twice_as_official_multi_scale_logits(
    tiny_model_config):
  """Official multi_scale_logits resizes each scale's feature-resolution
  logits to scale_dimension(size, max(1, s) / logits_output_stride), then
  predict_labels_multi_scale to the image; the image itself is resized to
  scale_dimension(size, s) = int((size - 1) * s + 1)."""
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 255, (1, 33, 33, 3)).astype(np.float32)
  model = make_predictions_nontrivial(
      deeplab_model.build_deeplab_model(tiny_model_config), images)
  raw, stride = multiscale.logits_model(model)
  assert stride == deeplab_model.logits_output_stride(tiny_model_config)

  def resize(x, size):
    return tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)

  scaled = resize(images, [17, 17])  # int(32 * 0.5 + 1)
  logits = resize(raw(scaled), [(33 - 1) // stride + 1] * 2)
  expected = tf.nn.softmax(resize(logits, [33, 33]))
  probabilities, _ = multiscale.predict(model, images, (0.5,))
  np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_image_pooling_window_scales_with_the_image(tiny_model_config):
  """Official multi_scale_logits scales image_pooling_crop_size with the
  image: at scale 0.5 a model trained with a 33x33 pooling crop (window
  3x3 at OS 16) pools its 17x17 input's 2x2 features with a 2x2 window,
  as the same weights built for a 17x17 crop do."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  config = dataclasses.replace(tiny_model_config,
                               image_pooling_crop_size=(33, 33))
  model = deeplab_model.build_deeplab_model(config)
  small = deeplab_model.build_deeplab_model(
      dataclasses.replace(config, image_pooling_crop_size=(17, 17)))
  images = np.random.default_rng(0).uniform(0, 255, (1, 33, 33, 3))
  make_predictions_nontrivial(model, images)
  small.set_weights(model.get_weights())
  scaled = tf.raw_ops.ResizeBilinear(images=tf.constant(images, tf.float32),
                                     size=[17, 17], align_corners=True)
  raw, _ = multiscale.logits_model(model)
  with multiscale.image_pooling_window_at(model, 0.5):
    assert model.get_layer("aspp").pool_size == (2, 2)
    at_half = raw(scaled, training=False)
  assert model.get_layer("aspp").pool_size == (3, 3)  # Restored.
  expected = multiscale.logits_model(small)[0](scaled, training=False)
  np.testing.assert_allclose(at_half, expected, rtol=1e-5, atol=1e-5)
  # And predict() applies it: the 3x3 window does not fit 2x2 features.
  probabilities, _ = multiscale.predict(model, images, scales=(0.5, 1.0))
  assert probabilities.shape == (1, 33, 33, 3)


def _nontrivial(config, images):
  return make_predictions_nontrivial(deeplab_model.build_deeplab_model(config),
                                     images)


def test_prediction_with_upsampled_logits_false_is_official_predict_labels(
    tiny_model_config):
  """Official predict_labels with prediction_with_upsampled_logits=False:
  argmax at the logits' stride, then TF1 resize_nearest_neighbor
  (align_corners=True) of the labels; the probabilities are TF1
  resize_bilinear (align_corners=True) of the softmax. True (the default)
  is the plain forward pass, bit for bit."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  images = np.random.default_rng(2).uniform(0, 255, (2, 33, 41, 3)).astype(
      np.float32)
  model = _nontrivial(tiny_model_config, images)
  labels, probabilities, logits = multiscale.predict_labels(model, images)
  outputs = model(images, training=False)
  np.testing.assert_array_equal(labels, np.argmax(outputs, -1))
  np.testing.assert_array_equal(logits, outputs)
  np.testing.assert_array_equal(probabilities, tf.nn.softmax(outputs))

  blocky = deeplab_model.build_deeplab_model(dataclasses.replace(
      tiny_model_config, prediction_with_upsampled_logits=False))
  blocky.set_weights(model.get_weights())
  raw, _ = multiscale.logits_model(model)
  low = raw(images, training=False)
  expected_labels = tf.compat.v1.image.resize_nearest_neighbor(
      tf.argmax(low, 3)[..., None], [33, 41], align_corners=True)[..., 0]
  expected_probabilities = tf.compat.v1.image.resize_bilinear(
      tf.nn.softmax(low), [33, 41], align_corners=True)
  labels, probabilities, logits = multiscale.predict_labels(blocky, images)
  np.testing.assert_array_equal(labels, expected_labels)
  assert not np.array_equal(labels, np.argmax(outputs, -1))  # Blockier.
  np.testing.assert_allclose(probabilities, expected_probabilities,
                             atol=1e-6)
  np.testing.assert_allclose(tf.nn.softmax(logits), probabilities, atol=1e-5)
  lean, none, _ = multiscale.predict_labels(blocky, images,
                                            with_probabilities=False)
  np.testing.assert_array_equal(lean, expected_labels)
  assert none is None


def test_image_pyramid_is_official_multi_scale_logits(tiny_model_config):
  """Official multi_scale_logits: each scale's logits (image resized to
  int((size - 1) * s + 1)) resized to the logits' size at max(1, largest
  scale), merged by max or mean; predict_labels upsamples the merged
  logits to the image."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  images = np.random.default_rng(3).uniform(0, 255, (1, 33, 33, 3)).astype(
      np.float32)
  config = dataclasses.replace(tiny_model_config, image_pyramid=(0.5, 1.5),
                               merge_method="avg")
  model = _nontrivial(config, images)
  raw, stride = multiscale.logits_model(model)
  assert stride == 4

  def resize(x, size):
    return tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)

  logits_size = [int(32 * 1.5 / stride + 1)] * 2  # scale_dimension(33, 1.5/4)
  per_scale = [resize(raw(resize(images, [int(32 * s + 1)] * 2)), logits_size)
               for s in (0.5, 1.5)]
  for merge_method, reduce in (("max", np.max), ("avg", np.mean)):
    outputs = multiscale.pyramid_logits(model, images, config.image_pyramid,
                                        merge_method)
    assert sorted(outputs) == ["logits_0.50", "logits_1.50", "merged_logits"]
    np.testing.assert_allclose(outputs["logits_0.50"], per_scale[0],
                               atol=1e-5)
    merged = reduce(np.stack(per_scale, -1), axis=-1)
    np.testing.assert_allclose(outputs["merged_logits"], merged, atol=1e-5)
  # The model's own options (avg) drive single-pass prediction.
  labels, _, logits = multiscale.predict_labels(model, images)
  np.testing.assert_allclose(logits, resize(merged, [33, 33]), atol=1e-4)
  np.testing.assert_array_equal(labels, np.argmax(logits, -1))


def test_resize_labels_nearest_is_tf1_resize_nearest_neighbor():
  """The gathers pick the pixels of TF1 resize_nearest_neighbor with
  align_corners=True (roundf of i * (in - 1) / (out - 1) in float32), for
  up- and downsampling and ratios whose halves round away from zero."""
  labels = tf.reshape(tf.range(9 * 7, dtype=tf.int32), [1, 9, 7])
  for size in [(33, 41), (9, 7), (5, 3), (1, 1), (17, 25), (513, 97)]:
    expected = tf.compat.v1.image.resize_nearest_neighbor(
        labels[..., None], size, align_corners=True)[..., 0]
    np.testing.assert_array_equal(
        multiscale.resize_labels_nearest(labels, tf.constant(size)), expected)
