"""make_dataset: documented shapes and dtypes, eval order, determinism."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.config import DataConfig
from deeplab.datasets import input_pipeline


def _config(data_dir, **kwargs):
  args = dict(dataset="demo", dataset_dir=str(data_dir), split="train",
              batch_size=4, crop_size=(48, 48), min_scale_factor=0.5,
              max_scale_factor=2.0, scale_factor_step_size=0.25,
              shuffle_buffer=16)
  args.update(kwargs)
  return DataConfig(**args)


def test_train_batches(demo_tfrecords):
  dataset = input_pipeline.make_dataset(_config(demo_tfrecords))
  features, labels = dataset.element_spec
  assert features["image"].shape == (4, 48, 48, 3)  # Static batch.
  assert labels.shape == (4, 48, 48)
  for features, labels in dataset.take(3):  # 12 > 8 examples: it repeats.
    assert features["image"].dtype == tf.float32
    image = features["image"].numpy()
    assert image.min() >= 0 and image.max() <= 255
    assert features["height"].dtype == tf.int32
    assert features["width"].dtype == tf.int32
    np.testing.assert_array_equal(features["height"], [64] * 4)
    assert features["filename"].dtype == tf.string
    assert labels.dtype == tf.int32
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 255}


def test_eval_is_one_ordered_pass(demo_tfrecords):
  config = _config(demo_tfrecords, split="val", is_training=False,
                   crop_size=(72, 80))
  batches = list(input_pipeline.make_dataset(config))
  assert [b[1].shape[0] for b in batches] == [4, 1]  # Keeps the remainder.
  names = [n.decode() for b in batches for n in b[0]["filename"].numpy()]
  assert names == [f"val_{i:06d}" for i in range(5)]
  features, labels = batches[0]
  assert features["image"].shape == (4, 72, 80, 3)
  # Eval only pads: the 64x64 image is at the top left, the rest is padding.
  assert (labels[:, 64:, :].numpy() == 255).all()
  assert (labels[:, :, 64:].numpy() == 255).all()
  assert (features["image"][:, 64:, :].numpy() == 127.5).all()
  assert (labels[:, :64, :64].numpy() != 255).mean() > 0.7


def test_deterministic_input_is_reproducible(demo_tfrecords):
  config = _config(demo_tfrecords, deterministic=True, seed=5)
  first = [b for b in input_pipeline.make_dataset(config).take(2)]
  again = [b for b in input_pipeline.make_dataset(config).take(2)]
  for (f1, l1), (f2, l2) in zip(first, again):
    np.testing.assert_array_equal(f1["filename"], f2["filename"])
    np.testing.assert_array_equal(f1["image"], f2["image"])
    np.testing.assert_array_equal(l1, l2)


def test_input_fn_with_input_context(demo_tfrecords):
  context = tf.distribute.InputContext(num_input_pipelines=2,
                                       input_pipeline_id=1,
                                       num_replicas_in_sync=2)
  input_fn = input_pipeline.make_input_fn(_config(demo_tfrecords))
  features, labels = next(iter(input_fn(context)))
  assert features["image"].shape == (2, 48, 48, 3)  # Per-replica batch.
  assert labels.shape == (2, 48, 48)


def test_missing_dataset_dir_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no_such_dir"):
    input_pipeline.make_dataset(_config(tmp_path / "no_such_dir"))


def test_unknown_dataset_is_named(demo_tfrecords):
  with pytest.raises(ValueError, match="'nope'.*pascal_voc_seg"):
    input_pipeline.make_dataset(_config(demo_tfrecords, dataset="nope"))
