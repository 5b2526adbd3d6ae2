"""One worker of the two-worker test (run by test_multi_worker.py).

Usage: python multi_worker_worker.py MODEL_DIR OUTPUT_NPZ (with TF_CONFIG).
Trains the tiny model 3 steps under MultiWorkerMirroredStrategy, then saves
this worker's final weights to OUTPUT_NPZ.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab.core import experiment  # pylint: disable=g-import-not-at-top


def input_fn(input_context=None):
  # Each worker reads its own shard of a common dataset.
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (8, 33, 33, 3)).astype(np.float32)
  labels = np.where(images.mean(-1) > 127, 1, 2).astype(np.int32)
  dataset = tf.data.Dataset.from_tensor_slices(({"image": images}, labels))
  batch = 4
  if input_context is not None:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
    batch = input_context.get_per_replica_batch_size(4)
  return dataset.repeat().batch(batch)


def main(model_dir, output):
  strategy = experiment.make_strategy("multi_worker_mirrored")
  model_config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, output_stride=16,
      decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=16,
      decoder_filters=16, low_level_filters=8, batch_norm_momentum=0.9,
      sync_batch_norm=True)
  train_config = config_lib.TrainConfig(
      train_logdir=model_dir, training_number_of_steps=3, optimizer="momentum",
      base_learning_rate=0.05, save_interval_steps=2, log_steps=1,
      image_summary_steps=0)
  runner = experiment.make_runner(model_config, model_dir, 255,
                                  train_config=train_config,
                                  strategy=strategy)
  step = runner.train(input_fn, max_steps=3)
  weights = {w.path: w.numpy() for w in runner.model.weights}
  np.savez(output, step=step, is_chief=runner.is_chief, **weights)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
