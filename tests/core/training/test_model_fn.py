"""model_fn in each mode, on the real DeepLab model at a tiny size."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.modeling import deeplab_model
from deeplab.core.training import losses
from deeplab.core.training import model_fn as model_fn_lib
from deeplab.core.training.model_fn import ModeKeys
from testing_utils import make_predictions_nontrivial


def _batch():
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (2, 33, 33, 3)).astype(np.float32)
  # A learnable target: bright pixels are class 1, dark ones class 2.
  labels = np.where(images.mean(-1) > 127, 1, 2).astype(np.int32)
  labels[:, :3] = 255
  return {"image": tf.constant(images)}, tf.constant(labels)


def _params(config, optimizer=None, random_weights=False):
  model = deeplab_model.build_deeplab_model(config)
  if random_weights:
    make_predictions_nontrivial(model, _batch()[0]["image"])
  return model_fn_lib.ModelFnParams(
      model=model,
      num_classes=config.num_classes, ignore_label=255, optimizer=optimizer)


def test_train_steps_lower_the_loss(tiny_model_config):
  params = _params(tiny_model_config, keras.optimizers.Adam(1e-2))
  features, labels = _batch()
  step = tf.function(lambda f, l: model_fn_lib.model_fn(
      f, l, ModeKeys.TRAIN, params).data_loss)
  losses = [float(step(features, labels)) for _ in range(20)]
  assert int(params.optimizer.iterations) == 20
  assert losses[-1] < 0.75 * losses[0], losses


def test_eval_spec_has_loss_and_confusion_matrix(tiny_model_config):
  params = _params(tiny_model_config)
  features, labels = _batch()
  spec = model_fn_lib.model_fn(features, labels, ModeKeys.EVAL, params)
  confusion = spec.metric_updates["confusion_matrix"].numpy()
  assert confusion.shape == (3, 3)
  assert confusion.sum() == int(np.sum(labels.numpy() != 255))
  assert spec.loss is not None and spec.train_op is None
  assert spec.predictions["semantic"].shape == (2, 33, 33)


def test_predict_spec(tiny_model_config):
  params = _params(tiny_model_config, random_weights=True)
  features, _ = _batch()
  spec = model_fn_lib.model_fn(features, None, ModeKeys.PREDICT, params)
  probabilities = spec.predictions["probabilities"].numpy()
  assert probabilities.shape == (2, 33, 33, 3)
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(spec.predictions["semantic"].numpy(),
                                probabilities.argmax(-1))
  assert spec.loss is None


def test_train_without_optimizer_is_a_clear_error(tiny_model_config):
  params = _params(tiny_model_config)
  features, labels = _batch()
  with pytest.raises(ValueError, match="optimizer"):
    model_fn_lib.model_fn(features, labels, ModeKeys.TRAIN, params)


def test_train_without_upsampling_runs_the_logits_at_their_stride(
    tiny_model_config):
  """Official `upsample_logits=False`: the loss is taken on the stride-4
  logits against downsampled labels; the weights are the model's own."""
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  config = dataclasses.replace(tiny_model_config, aspp_dropout_rate=0.0)
  params = _params(config, keras.optimizers.SGD(0.0))
  params.loss_config = config_lib.LossConfig(upsample_logits=False)
  params.train_model = deeplab_model.logits_before_upsampling(params.model)
  assert params.train_model.count_params() == params.model.count_params()
  features, labels = _batch()
  spec = model_fn_lib.model_fn(features, labels, ModeKeys.TRAIN, params)
  logits = params.train_model(features["image"], training=True)
  assert logits.shape == (2, 9, 9, 3)  # 33 px at stride 4, corners aligned.
  expected = losses.softmax_cross_entropy_loss(
      logits, labels.numpy()[:, ::4, ::4], 3, 255)
  assert float(spec.data_loss) == pytest.approx(float(expected), rel=1e-4)


def test_image_pyramid_trains_each_scale_and_the_merged_logits(
    tiny_model_config):
  """Official train.py with image_pyramid: add_softmax_cross_entropy_loss_
  for_each_scale puts a loss on every scale's logits and on the merged
  (max) ones, upsampled to the labels with corners aligned, or against
  labels downsampled to them (upsample_logits=False)."""
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  config = dataclasses.replace(tiny_model_config, aspp_dropout_rate=0.0,
                               image_pyramid=(0.5, 1.0))
  params = _params(config, keras.optimizers.SGD(0.0), random_weights=True)
  features, labels = _batch()
  images = features["image"]
  raw = deeplab_model.logits_before_upsampling(params.model)

  def resize(x, size):
    return tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)

  scaled = [resize(images, [17, 17]), images]  # int(32 * s + 1)
  per_scale = [resize(raw(x, training=True), [9, 9]) for x in scaled]
  all_logits = per_scale + [tf.reduce_max(tf.stack(per_scale, -1), -1)]

  def cross_entropy(logits, target):
    valid = target != 255
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        np.where(valid, target, 0), logits)[valid])

  expected = sum(cross_entropy(resize(l, [33, 33]), labels.numpy())
                 for l in all_logits)
  spec = model_fn_lib.model_fn(features, labels, ModeKeys.TRAIN, params)
  assert float(spec.data_loss) == pytest.approx(float(expected), rel=1e-4)

  params.loss_config = config_lib.LossConfig(upsample_logits=False)
  expected = sum(cross_entropy(l, labels.numpy()[:, ::4, ::4])
                 for l in all_logits)
  spec = model_fn_lib.model_fn(features, labels, ModeKeys.TRAIN, params)
  assert float(spec.data_loss) == pytest.approx(float(expected), rel=1e-4)


def test_image_pyramid_with_an_auxiliary_head_is_a_clear_error(
    tiny_model_config):
  config = dataclasses.replace(tiny_model_config, aux_head=True,
                               image_pyramid=(0.5, 1.0))
  params = _params(config, keras.optimizers.SGD(0.0))
  features, labels = _batch()
  with pytest.raises(ValueError, match="--aux_loss_weight=0"):
    model_fn_lib.model_fn(features, labels, ModeKeys.TRAIN, params)
