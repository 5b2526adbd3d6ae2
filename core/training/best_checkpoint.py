"""Keeps the checkpoint of the best mIoU so far in `train_logdir/best`.

With online evaluation (`train.py --eval_online`), every evaluated
checkpoint whose mIoU beats the best so far is copied, with the model
config beside it, into `train_logdir/best`, which is then a train_logdir of
its own: `evaluate.py --checkpoint_dir=train_logdir/best` and
`export_model.py --checkpoint_path=train_logdir/best` take it. The best
mIoU is read back from `best/best_metrics.json`, so it survives restarts.
"""

import json
import os
from typing import Dict, Optional

from absl import logging
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import io_utils

BEST_DIR = "best"
BEST_METRICS = "best_metrics.json"


def best_metrics(model_dir: str) -> Optional[Dict[str, object]]:
  """The metrics of the checkpoint in `model_dir/best`, or None."""
  path = os.path.join(model_dir, BEST_DIR, BEST_METRICS)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _stage(model_dir: str, results: Dict[str, object]) -> str:
  """Writes the new best folder aside; returns its path."""
  source = results["checkpoint_path"]
  name = os.path.basename(source)
  staging = os.path.join(model_dir, f".{BEST_DIR}-tmp")
  if tf.io.gfile.exists(staging):
    tf.io.gfile.rmtree(staging)
  tf.io.gfile.makedirs(staging)
  for path in tf.io.gfile.glob(source + ".*"):
    tf.io.gfile.copy(path, os.path.join(staging, os.path.basename(path)))
  config = checkpoints.model_config_path(model_dir)
  if tf.io.gfile.exists(config):
    tf.io.gfile.copy(config,
                     os.path.join(staging, checkpoints.MODEL_CONFIG_FILE))
  with tf.io.gfile.GFile(os.path.join(staging, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "{name}"\n'
            f'all_model_checkpoint_paths: "{name}"\n')
  io_utils.atomic_write_json(os.path.join(staging, BEST_METRICS), {
      "miou": results["miou"], "global_step": results["global_step"],
      "checkpoint": name})
  return staging


def keep_if_best(model_dir: str, results: Dict[str, object]) -> bool:
  """Copies the evaluated checkpoint to `model_dir/best` if its mIoU is the
  best so far. The folder is replaced atomically.

  Args:
    model_dir: The train_logdir.
    results: Evaluation results with `miou`, `global_step` and
      `checkpoint_path`.

  Returns:
    Whether the checkpoint became the best.
  """
  best = best_metrics(model_dir)
  if best is not None and best["miou"] >= results["miou"]:
    return False
  staging = _stage(model_dir, results)
  final = os.path.join(model_dir, BEST_DIR)
  old = os.path.join(model_dir, f".{BEST_DIR}-old")
  if tf.io.gfile.exists(final):
    tf.io.gfile.rename(final, old, overwrite=True)
  tf.io.gfile.rename(staging, final)
  if tf.io.gfile.exists(old):
    tf.io.gfile.rmtree(old)
  logging.info("New best mIoU %.4f at step %d: copied %s to %s",
               results["miou"], results["global_step"],
               os.path.basename(results["checkpoint_path"]), final)
  return True
