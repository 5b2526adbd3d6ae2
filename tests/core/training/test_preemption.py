"""SigtermWatcher and ClusterPreemptionHandler (TF's handler, local mode).

The two-worker behaviour (the coordination service, a chief and a
non-chief) is tested end to end in test_multi_worker.py.
"""

import os
import signal
import types

import pytest
import tensorflow as tf

from deeplab.core.training import preemption


def test_sigterm_watcher_records_the_signal_and_restores_the_handler():
  before = signal.getsignal(signal.SIGTERM)
  with preemption.SigtermWatcher() as watcher:
    assert not watcher.requested
    os.kill(os.getpid(), signal.SIGTERM)
    assert watcher.requested
  assert signal.getsignal(signal.SIGTERM) is before


def test_num_workers_counts_chief_and_workers_only():
  assert preemption.num_workers(tf.distribute.get_strategy()) == 1
  spec = tf.train.ClusterSpec({"chief": ["a:1"], "worker": ["b:1", "c:1"],
                               "evaluator": ["d:1"]})
  strategy = types.SimpleNamespace(
      cluster_resolver=tf.distribute.cluster_resolver.SimpleClusterResolver(
          spec, task_type="worker", task_id=1))
  assert preemption.num_workers(strategy) == 3
  # Not a MultiWorkerMirroredStrategy: the runner's own mechanism.
  assert not preemption.uses_cluster_handler(strategy)


class _Stopped(Exception):
  pass


def test_cluster_handler_restores_counts_from_the_global_step_and_saves_on_sigterm(
    tmp_path):
  model_dir = str(tmp_path)
  weight = tf.Variable(0.0)
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(weight=weight, step=step)
  # Checkpoints written without the handler (e.g. by a single-worker run):
  # they hold no handler step count.
  writer = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=5)
  for value in (3, 5):
    weight.assign(float(value))
    step.assign(value)
    writer.save(checkpoint_number=value)
  weight.assign(0.0)
  step.assign(0)

  saves = []

  def save_fn():
    saves.append((int(step), int(checkpoint.checkpointed_runs)))
    writer.save(checkpoint_number=int(step))

  def exit_fn():
    raise _Stopped()

  before = signal.getsignal(signal.SIGTERM)
  handler = preemption.ClusterPreemptionHandler(
      None, checkpoint, model_dir, save_fn=save_fn, exit_fn=exit_fn)
  assert handler.active
  # Restored the latest checkpoint, deleting none.
  assert handler.restored_path == os.path.join(model_dir, "ckpt-5")
  assert float(weight) == 5.0 and int(step) == 5
  assert os.path.exists(os.path.join(model_dir, "ckpt-3.index"))
  # The handler's SIGTERM handler is active only inside watching().
  assert signal.getsignal(signal.SIGTERM) is before
  assert handler.run_calls == 0  # The checkpoint held no count.
  handler.align_step(int(step))
  assert handler.run_calls == 5

  def train_step():
    step.assign_add(1)
    return int(step)

  assert handler.run(train_step) == 6
  with pytest.raises(_Stopped):
    with handler.watching():
      assert signal.getsignal(signal.SIGTERM) is not before
      os.kill(os.getpid(), signal.SIGTERM)
      for _ in range(5):
        handler.run(train_step)
  assert signal.getsignal(signal.SIGTERM) is before
  # SIGTERM came after step 6: the handler agrees on "save after step 7",
  # runs it, then saves (with its count equal to the step) and exits.
  assert saves == [(7, 7)]
  assert int(step) == 7 and handler.run_calls == 7
  reader = tf.train.load_variable(os.path.join(model_dir, "ckpt-7"),
                                  "checkpointed_runs/.ATTRIBUTES/VARIABLE_VALUE")
  assert int(reader) == 7


def test_note_saved_step_sets_the_count_stored_with_the_runners_saves(
    tmp_path):
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(step=step)
  handler = preemption.ClusterPreemptionHandler(
      None, checkpoint, str(tmp_path), save_fn=lambda: None,
      exit_fn=lambda: None)
  assert handler.restored_path is None
  step.assign(4)
  handler.note_saved_step(4)
  path = tf.train.CheckpointManager(checkpoint, str(tmp_path),
                                    max_to_keep=1).save(checkpoint_number=4)
  assert int(tf.train.load_variable(
      path, "checkpointed_runs/.ATTRIBUTES/VARIABLE_VALUE")) == 4
