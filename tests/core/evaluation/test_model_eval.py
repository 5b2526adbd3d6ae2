"""model_eval: batched scoring of a Keras model equals counting by hand."""

import os

import numpy as np
import tensorflow as tf

from deeplab.core.evaluation import model_eval
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import multiscale
from testing_utils import make_predictions_nontrivial

NUM_CLASSES = 3


def _data():
  rng = np.random.default_rng(4)
  images = rng.uniform(0, 255, (4, 33, 33, 3)).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, (4, 33, 33)).astype(np.int32)
  labels[:, :2] = 255  # Ignored rows.
  return images, labels


def _input_fn(input_context=None):
  del input_context
  images, labels = _data()
  return tf.data.Dataset.from_tensor_slices(
      ({"image": images}, labels)).batch(2)


def _confusion_by_hand(model, scales, flip):
  images, labels = _data()
  _, logits = multiscale.predict(model, images, scales, flip)
  predictions = np.argmax(logits.numpy(), -1)
  valid = labels != 255
  confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
  np.add.at(confusion, (labels[valid], predictions[valid]), 1)
  return confusion


def test_confusion_matrix_and_summaries(tiny_model_config, tmp_path):
  model = deeplab_model.build_deeplab_model(tiny_model_config)
  make_predictions_nontrivial(model, _data()[0])
  evaluator = model_eval.ModelEvaluator(model, NUM_CLASSES, 255)
  for scales, flip in (((1.0,), False), ((0.75, 1.0), True)):
    results = evaluator.evaluate(_input_fn, scales, flip)
    expected = _confusion_by_hand(model, scales, flip)
    np.testing.assert_array_equal(results["confusion_matrix"], expected)
    assert results["num_images"] == 4
    assert results["pixel_accuracy"] == np.trace(expected) / expected.sum()
  evaluator.write_summaries(str(tmp_path), results, step=3)
  tags = set()
  for name in os.listdir(tmp_path):
    for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name)):
      tags.update(value.tag for value in event.summary.value)
  assert {"miou", "pixel_accuracy", "class_iou/0", "image", "label",
          "prediction"} <= tags
