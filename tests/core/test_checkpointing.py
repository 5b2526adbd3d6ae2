"""Every weight of the full model survives a tf.train.Checkpoint round trip.

Keras 3 layers kept in a list attribute are invisible to tf.train.Checkpoint;
this guards the runner's resume against silently dropping such weights.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from deeplab.core.modeling import deeplab_model
from testing_utils import randomize_weights


def test_checkpoint_restores_every_weight(tiny_model_config, tmp_path):
  config = dataclasses.replace(tiny_model_config, atrous_rates=(2, 4, 6))
  original = randomize_weights(deeplab_model.build_deeplab_model(config))
  path = tf.train.Checkpoint(model=original).save(str(tmp_path / "ckpt"))
  restored = deeplab_model.build_deeplab_model(config)
  tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
  assert len(restored.weights) == len(original.weights)
  for want, got in zip(original.weights, restored.weights):
    assert want.path == got.path
    np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
