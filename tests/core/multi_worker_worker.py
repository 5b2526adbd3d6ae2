"""One worker of the two-worker tests (run by test_multi_worker.py).

Usage: python multi_worker_worker.py MODEL_DIR OUTPUT_NPZ [MAX_STEPS]
(with TF_CONFIG). Trains the tiny model to MAX_STEPS (default 3) under
MultiWorkerMirroredStrategy, saving every 2 steps, then saves this worker's
final step and weights to OUTPUT_NPZ. On SIGTERM (preemption) it saves them
too, with `preempted=True`, and exits with status 143 like train.py.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import logging  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
from deeplab.core.training import factory  # pylint: disable=g-import-not-at-top
from deeplab.core.training import preemption  # pylint: disable=g-import-not-at-top


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


def _save_result(output, runner, step, preempted):
  weights = {w.path: w.numpy() for w in runner.model.weights}
  # The handler's own step count, which must equal the global step.
  handler = runner._cluster_preemption  # pylint: disable=protected-access
  handler_steps = handler.run_calls if handler is not None else -1
  np.savez(output, step=step, is_chief=runner.is_chief, preempted=preempted,
           handler_steps=handler_steps, **weights)


def main(model_dir, output, max_steps=3):
  strategy = factory.make_strategy(config_lib.DistributionConfig(
      distribution_strategy="multi_worker_mirrored"))
  model_config = config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=3, output_stride=16,
      decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=16,
      decoder_filters=16, low_level_filters=8, batch_norm_momentum=0.9,
      sync_batch_norm=True)
  train_config = config_lib.TrainConfig.from_flat(
      train_logdir=model_dir, training_number_of_steps=max_steps,
      optimizer="momentum", base_learning_rate=0.05, save_interval_steps=2,
      log_steps=1, image_summary_steps=0)
  runner = factory.make_runner(model_config, model_dir, 255,
                                  train_config=train_config,
                                  strategy=strategy)
  try:
    step = runner.train(input_fn, max_steps=max_steps)
  except preemption.TrainingPreempted as stopped:
    _save_result(output, runner, stopped.step, preempted=True)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
  _save_result(output, runner, step, preempted=False)


if __name__ == "__main__":
  logging.set_verbosity(logging.INFO)
  tf.get_logger().setLevel("INFO")  # The PreemptionCheckpointHandler too.
  main(sys.argv[1], sys.argv[2], *[int(a) for a in sys.argv[3:]])
