"""Tests of the full model (deeplab.core.modeling.deeplab_model)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model


def _images(batch, height, width, seed=0):
  return np.random.default_rng(seed).uniform(
      0, 255, (batch, height, width, 3)).astype("float32")


def _build(input_shape=(None, None, 3), **overrides):
  config = config_lib.ModelConfig(num_classes=5, **overrides)
  return deeplab_model.build_deeplab_model(config, input_shape=input_shape)


def _assert_close(actual, expected, rtol=1e-5):
  """Relative to the largest logit (random-init logits are tiny)."""
  scale = max(float(np.abs(expected).max()), 1e-30)
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("output_stride,decoder_output_stride,rates", [
    (8, 4, (12, 24, 36)),
    (16, 4, ()),
    (16, None, (6, 12, 18)),
    (32, 8, ()),
])
@pytest.mark.parametrize("size", [(65, 65), (64, 50)])
def test_logits_at_input_resolution(output_stride, decoder_output_stride,
                                    rates, size):
  model = _build(output_stride=output_stride,
                 decoder_output_stride=decoder_output_stride,
                 atrous_rates=rates, input_shape=size + (3,))
  assert tuple(model.output.shape) == (None,) + size + (5,)
  logits = model(_images(1, *size))
  assert logits.shape == (1,) + size + (5,)
  assert logits.dtype == tf.float32


def test_dynamic_input_runs_on_two_sizes():
  model = _build()
  assert tuple(model.output.shape) == (None, None, None, 5)
  assert model(_images(2, 65, 65)).shape == (2, 65, 65, 5)
  assert model(_images(1, 40, 72)).shape == (1, 40, 72, 5)


def test_layer_names_and_logits_layer():
  model = _build()
  names = [layer.name for layer in model.layers]
  assert names[:3] == ["image", "preprocess", "Conv1"]
  assert names[-4:] == ["aspp", "decoder", "logits", "upsample_logits"]
  logits = model.get_layer(deeplab_model.LOGITS_LAYER)
  assert isinstance(logits, keras.layers.Conv2D)
  assert logits.use_bias and logits.activation is keras.activations.linear
  assert logits.kernel.shape == (1, 1, 256, 5)
  # The decoder fuses MobileNetV2's stride-4 depthwise output (144 ch).
  decoder = model.get_layer("decoder")
  assert decoder.feature_projection.conv.kernel.shape == (1, 1, 144, 48)
  assert "decoder" not in [l.name for l in _build(
      decoder_output_stride=None).layers]


def test_unknown_variant_is_reported():
  with pytest.raises(ValueError, match="'resnet_v9'"):
    _build(model_variant="resnet_v9")


def test_preprocessing_is_inside_the_model():
  model = _build()
  preprocess = keras.Model(model.input, model.get_layer("preprocess").output)
  out = preprocess(np.full((1, 8, 8, 3), 255.0, "float32")).numpy()
  np.testing.assert_allclose(out, 1.0)


def test_weight_decay_follows_slim_convention():
  model = _build(weight_decay=1e-2)
  model(_images(1, 33, 33))
  kernels = [w for w in model.trainable_weights
             if w.path.endswith("kernel") and "depthwise" not in w.path]
  # Regularised: every conv kernel except the depthwise ones.
  assert len(model.losses) == len(kernels)
  expected = sum(1e-2 * np.sum(np.square(k.numpy())) / 2 for k in kernels)
  np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-4)


def test_keras_save_and_load_round_trip(tmp_path):
  model = _build(atrous_rates=(6, 12, 18))
  x = _images(1, 65, 65)
  path = str(tmp_path / "model.keras")
  model.save(path)
  restored = keras.saving.load_model(path)
  _assert_close(restored(x), model(x))


def test_tf_function_and_saved_model_with_uint8_signature(tmp_path):
  model = _build()
  images = np.random.default_rng(3).integers(0, 256, (1, 33, 41, 3), np.uint8)
  expected = model(images.astype("float32")).numpy()

  class Exporter(tf.Module):

    def __init__(self, model):
      super().__init__()
      self.model = model

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def serve(self, images):
      return self.model(tf.cast(images, tf.float32), training=False)

  exporter = Exporter(model)
  _assert_close(exporter.serve(images), expected)
  tf.saved_model.save(exporter, str(tmp_path))
  restored = tf.saved_model.load(str(tmp_path))
  _assert_close(restored.serve(images), expected)
  assert restored.serve(np.zeros((2, 20, 30, 3), np.uint8)).shape == (
      2, 20, 30, 5)


def test_mirrored_strategy_with_sync_batch_norm():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    model = _build(sync_batch_norm=True)
  images = _images(2, 33, 33)

  @tf.function
  def step(x):
    return model(x, training=True)

  per_replica = strategy.run(step, args=(tf.constant(images),))
  logits = strategy.experimental_local_results(per_replica)[0]
  assert logits.shape == (2, 33, 33, 5)


@pytest.mark.slow
def test_tflite_conversion_matches_keras():
  model = _build(input_shape=(33, 33, 3))
  x = _images(1, 33, 33)
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  interpreter = tf.lite.Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  _assert_close(out, model(x).numpy(), rtol=1e-4)
