"""best_checkpoint: the best-mIoU checkpoint kept in train_logdir/best."""

import os

import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core.modeling import deeplab_model
from deeplab.core.training import best_checkpoint


def _write_run(model_config, model_dir):
  """ckpt-1 and ckpt-2 of a model, and its model config, as training writes
  them."""
  model = deeplab_model.build_deeplab_model(model_config)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       model_dir, max_to_keep=5)
  for step in (1, 2):
    manager.save(checkpoint_number=step)
  checkpoints.write_model_config(model_dir, model_config)


def _result(model_dir, miou, step):
  return {"miou": miou, "global_step": step,
          "checkpoint_path": os.path.join(model_dir, f"ckpt-{step}")}


def test_keep_if_best_keeps_only_improvements(tiny_model_config, tmp_path):
  model_dir = str(tmp_path / "train")
  _write_run(tiny_model_config, model_dir)
  assert best_checkpoint.best_metrics(model_dir) is None
  assert best_checkpoint.keep_if_best(model_dir, _result(model_dir, 0.5, 1))
  assert not best_checkpoint.keep_if_best(model_dir,
                                          _result(model_dir, 0.4, 2))
  assert best_checkpoint.best_metrics(model_dir)["global_step"] == 1
  assert best_checkpoint.keep_if_best(model_dir, _result(model_dir, 0.6, 2))
  assert sorted(os.listdir(os.path.join(model_dir, "best"))) == [
      "best_metrics.json", "checkpoint", "ckpt-2.data-00000-of-00001",
      "ckpt-2.index", "model_config.json"]
  # `best` is a train_logdir of its own: evaluate.py and export take it.
  best = os.path.join(model_dir, "best")
  assert checkpoints.read_model_config(best) == tiny_model_config
  assert checkpoints.resolve_checkpoint(best).endswith("best/ckpt-2")
