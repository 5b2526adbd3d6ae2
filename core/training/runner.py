"""An estimator-style runner: train, evaluate, train_and_evaluate.

`tf.estimator` is gone since TF 2.16. This runner keeps its contract: the
caller gives an `input_fn` and a `model_fn(features, labels, mode, params)`,
and the runner owns the loop, the `tf.distribute` strategy, resumable
checkpoints in `model_dir` and the TensorBoard summaries. Evaluation is
`core/evaluation/model_eval.py`'s (which `evaluate.py` uses without a
runner); restores go through `core/checkpoints.py`.

Example:

  runner = Runner(model_fn.model_fn, build_model, model_dir="/tmp/run",
                  task=Task(num_classes=21, ignore_label=255),
                  build_optimizer=lambda: keras.optimizers.SGD(0.01))
  runner.train(train_input_fn, max_steps=1000)
  metrics = runner.evaluate(eval_input_fn)
"""

import contextlib
import dataclasses
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.evaluation import model_eval
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import quantize
from deeplab.core.training import best_checkpoint
from deeplab.core.training import preemption
from deeplab.core.training import profiling
from deeplab.core.training import transfer
from deeplab.core.training.model_fn import ModeKeys
from deeplab.core.training.model_fn import ModelFnParams


@dataclasses.dataclass
class RunConfig:
  """How often the runner logs, summarises and checkpoints.

  Attributes:
    save_interval_steps: Save a checkpoint every this many steps.
    save_interval_secs: Save at least this often, in seconds.
    max_to_keep: Checkpoints kept in `model_dir`.
    log_steps: Log and write scalar summaries every this many steps.
    image_summary_steps: Write image summaries every this many steps (0: off).
    num_summary_images: Images per image summary.
    profile_logdir: Where to write a profile of training steps
      `profile_steps` of each run ('' is off; `profiling.StepProfiler`).
    profile_steps: (first, last) profiled steps of a run, from 1.
  """

  save_interval_steps: int = 500
  save_interval_secs: float = 600.0
  max_to_keep: int = 5
  log_steps: int = 50
  image_summary_steps: int = 500
  num_summary_images: int = 3
  profile_logdir: str = ""
  profile_steps: Tuple[int, int] = (5, 9)


@dataclasses.dataclass
class TrainOptions:
  """How the training step is built, beyond the loss and the optimizer.

  Attributes:
    freeze_level: `none`, `backbone` or `all_but_logits` (see
      `transfer.apply_freeze_level`).
    transfer_steps: Keep `freeze_level` until this step, then train
      everything (0: keep it for the whole run).
    last_layer_gradient_multiplier: Official gradient multiplier of the
      last layers (biases get twice it).
    last_layers_contain_logits_only: The last layers are the logits only.
    freeze_batch_norm: Keep BatchNorm statistics and parameters fixed
      (official `fine_tune_batch_norm=False`).
    jit_compile: Compile the per-replica step with XLA.
    save_input_state: Resume the input exactly where it was, so a resumed
      run sees the batches an uninterrupted run would (`--deterministic`).
      With one replica the iterator's state is saved in checkpoints (which
      makes them larger: shuffle buffers); with several, whose distributed
      iterators cannot be saved, a resumed run skips the batches already
      consumed (re-reading them once).
    keep_best_checkpoint: `train_and_evaluate` copies the checkpoint of
      the best mIoU so far into `model_dir/best`.
  """

  freeze_level: str = "none"
  transfer_steps: int = 0
  last_layer_gradient_multiplier: float = 1.0
  last_layers_contain_logits_only: bool = False
  freeze_batch_norm: bool = False
  jit_compile: bool = False
  save_input_state: bool = False
  keep_best_checkpoint: bool = True


@dataclasses.dataclass
class Task:
  """What is learned: classes, loss, and the model config to save.

  Attributes:
    num_classes: Number of classes.
    ignore_label: Label value that is neither trained on nor scored.
    loss_config: All loss options (default cross-entropy when None).
    adaptive_class_weights: Optional `class_weights.AdaptiveClassWeights`
      (built under the strategy scope; checkpointed with the model).
    colormap: [N, 3] uint8 colours for image summaries.
    model_config: The `ModelConfig` that `build_model` builds; written as
      `model_dir/model_config.json` when training starts, so evaluation,
      export and a resumed run build the same model.
  """

  num_classes: int
  ignore_label: int
  loss_config: Optional[config_lib.LossConfig] = None
  adaptive_class_weights: Optional[Any] = None
  colormap: Optional[np.ndarray] = None
  model_config: Optional[config_lib.ModelConfig] = None


def _format_duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else (
      f"{minutes}:{seconds:02d}")


class _Progress:
  """Logs the loss, rate and ETA, and writes the scalar summaries."""

  def __init__(self, step: int, total_steps: int):
    self.total_steps = total_steps
    self._start, self._step, self._images = time.time(), step, 0

  def add_images(self, count: int):
    self._images += count

  def log(self, step: int, loss: float, data_loss: float,
          learning_rate: float):
    now = time.time()
    elapsed = max(now - self._start, 1e-9)
    rate = (step - self._step) / elapsed
    images_per_sec = self._images / elapsed
    logging.info(
        "step %d/%d  loss %.4f  (cross-entropy %.4f)  lr %.3g  %.2f steps/s  "
        "%.1f images/s  ETA %s", step, self.total_steps, loss, data_loss,
        learning_rate, rate, images_per_sec,
        _format_duration((self.total_steps - step) / max(rate, 1e-9)))
    for name, value in (("loss/total", loss), ("loss/cross_entropy", data_loss),
                        ("loss/regularization", loss - data_loss),
                        ("learning_rate", learning_rate),
                        ("steps_per_sec", rate),
                        ("images_per_sec", images_per_sec)):
      tf.summary.scalar(name, value, step=step)
    self._start, self._step, self._images = now, step, 0


def _seed_generator_states(model: keras.Model) -> list:
  """The state variables of the Keras seed generators inside `model`."""
  states = []
  for layer in model._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
    for generator in getattr(layer, "_seed_generators", None) or ():
      states.append(generator.state)
  return states


class Runner:
  """Trains and evaluates one model under a `tf.distribute` strategy.

  Args:
    model_fn: `model_fn(features, labels, mode, params) -> ModelSpec`.
    build_model: Returns a new Keras model; called under the strategy scope.
    model_dir: Checkpoints and training summaries go here (the official
      `train_logdir`). Training resumes from the latest checkpoint in it.
    task: A `Task`: classes, loss options, colours, model config.
    build_optimizer: Returns the optimizer (needed for training).
    strategy: A `tf.distribute.Strategy`; the default strategy when None.
    run_config: A `RunConfig`.
    train_options: A `TrainOptions`.
    init_fn: Optional `init_fn(model)` run once when training starts from
      scratch (no checkpoint in `model_dir`), e.g. to load initial weights.
      Its return value is kept as `init_report`.
  """

  def __init__(self,
               model_fn: Callable,
               build_model: Callable[[], keras.Model],
               model_dir: str,
               task: Task,
               build_optimizer: Optional[
                   Callable[[], keras.optimizers.Optimizer]] = None,
               strategy: Optional[tf.distribute.Strategy] = None,
               run_config: Optional[RunConfig] = None,
               train_options: Optional[TrainOptions] = None,
               init_fn: Optional[Callable[[keras.Model], object]] = None):
    if not model_dir:
      raise ValueError("The runner needs a model_dir (--train_logdir).")
    self.model_fn = model_fn
    self.model_dir = model_dir
    self.task = task
    self.strategy = strategy or tf.distribute.get_strategy()
    self.run_config = run_config or RunConfig()
    self.train_options = train_options or TrainOptions()
    self._build_model = build_model
    self._build_optimizer = build_optimizer
    self._init_fn = init_fn
    self._params = ModelFnParams(
        model=None, num_classes=task.num_classes,
        ignore_label=task.ignore_label, loss_config=task.loss_config,
        adaptive_class_weights=task.adaptive_class_weights)
    self.init_report = None
    self.preempted = False
    self._applied_freeze_level = None
    self._restored = False
    self._checkpoint = None
    self._manager = None
    self._last_saved_path = None
    # TF's PreemptionCheckpointHandler, under a multi-worker cluster.
    self._cluster_preemption = None
    # Reused across train()/evaluate() calls (train_and_evaluate), so the
    # input pipeline and the traced step functions are built only once.
    self._train_input = None  # (input_fn, iterator)
    self._train_step = None
    self._evaluator = None

  # === Model, optimizer and checkpoints ===

  @property
  def model(self) -> keras.Model:
    """The Keras model, built on first use under the strategy scope."""
    if self._params.model is None:
      with self.strategy.scope():
        model = self._build_model()
        if self.train_options.freeze_batch_norm:
          deeplab_layers.freeze_batch_norm(model)
      self._params.model = model
      if not self._params.get_loss_config().upsample_logits:
        self._params.train_model = deeplab_model.logits_before_upsampling(
            model)
    return self._params.model

  def _ensure_optimizer(self) -> keras.optimizers.Optimizer:
    if self._params.optimizer is None:
      if self._build_optimizer is None:
        raise ValueError("Training needs build_optimizer.")
      model = self.model
      with self.strategy.scope():
        optimizer = self._build_optimizer()
        # Build the slots now so that a restore fills them immediately.
        optimizer.build(model.trainable_variables)
      self._params.optimizer = optimizer
    return self._params.optimizer

  @property
  def is_chief(self) -> bool:
    """Whether this worker writes checkpoints and summaries to `model_dir`.

    Every worker of a MultiWorkerMirroredStrategy must take part in saving
    (the variables are read collectively); non-chief workers write to a
    temporary folder that they delete.
    """
    resolver = getattr(self.strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs:
      return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
      return True
    has_chief = "chief" in resolver.cluster_spec().jobs
    return (task_type in (None, "worker") and not has_chief and
            (task_id or 0) == 0)

  def _checkpoint_dir(self) -> str:
    if self.is_chief:
      return self.model_dir
    resolver = self.strategy.cluster_resolver
    return os.path.join(self.model_dir,
                        f"workertemp_{resolver.task_type}_{resolver.task_id}")

  def _checkpoint_manager(self) -> tf.train.CheckpointManager:
    if self._manager is None:
      optimizer = self._ensure_optimizer()
      objects = dict(model=self.model, optimizer=optimizer)
      if self._params.adaptive_class_weights is not None:
        objects["adaptive_class_weights"] = self._params.adaptive_class_weights
      # Dropout's random state, so that a resumed run draws the same masks.
      seed_states = _seed_generator_states(self.model)
      if seed_states:
        objects["seed_generators"] = seed_states
      self._checkpoint = tf.train.Checkpoint(**objects)
      self._manager = tf.train.CheckpointManager(
          self._checkpoint, self._checkpoint_dir(),
          max_to_keep=self.run_config.max_to_keep,
          step_counter=optimizer.iterations)
    return self._manager

  @property
  def global_step(self) -> int:
    """The number of optimizer steps taken so far."""
    return int(self._ensure_optimizer().iterations.numpy())

  def latest_checkpoint(self) -> Optional[str]:
    """The newest checkpoint in `model_dir`, or None."""
    return checkpoints.latest_checkpoint(self.model_dir)

  def _save(self) -> str:
    step = self.global_step
    if self._cluster_preemption is not None:
      self._cluster_preemption.note_saved_step(step)
    path = self._checkpoint_manager().save(checkpoint_number=step)
    if self.is_chief:
      logging.info("Saved checkpoint %s", path)
    else:
      tf.io.gfile.rmtree(self._checkpoint_dir())
      path = os.path.join(self.model_dir, os.path.basename(path))
    self._last_saved_path = path
    return path

  def _save_unless_saved(self) -> str:
    """Saves the current step unless its checkpoint exists (every worker
    decides alike: their managers saw the same saves)."""
    latest = self._checkpoint_manager().latest_checkpoint
    if latest is not None and (
        checkpoints.step_of_checkpoint(latest) == self.global_step):
      self._last_saved_path = os.path.join(self.model_dir,
                                           os.path.basename(latest))
      return self._last_saved_path
    return self._save()

  def _raise_preempted(self):
    """The cluster handler's `exit_fn`, called after its save."""
    self.preempted = True
    self._cluster_preemption = None  # Its watchers have stopped.
    raise preemption.TrainingPreempted(self.global_step,
                                       self._last_saved_path)

  def _start_cluster_preemption(self) -> Optional[bool]:
    """Creates the cluster handler, which restores the latest checkpoint.

    Returns:
      Whether a checkpoint was restored; None when the handler is inactive
      on this platform (the caller restores, and uses its own mechanism).
    """
    handler = preemption.ClusterPreemptionHandler(
        self.strategy.cluster_resolver, self._checkpoint, self.model_dir,
        save_fn=self._save_unless_saved, exit_fn=self._raise_preempted)
    if not handler.active:
      return None
    self._cluster_preemption = handler
    handler.align_step(self.global_step)
    if handler.restored_path:
      logging.info("Resumed from %s at step %d (PreemptionCheckpointHandler).",
                   handler.restored_path, self.global_step)
    return handler.restored_path is not None

  def restore_model(self, checkpoint_path: Optional[str] = None) -> str:
    """Loads model weights (no optimizer state): `checkpoints.restore_model`.

    Args:
      checkpoint_path: A checkpoint prefix, or a folder whose latest
        checkpoint is used; `model_dir` when None.

    Returns:
      The checkpoint prefix that was loaded.
    """
    return checkpoints.restore_model(
        self.model, checkpoint_path or self.model_dir, "checkpoint_dir")

  def _restore_for_training(self) -> bool:
    """Restores the latest checkpoint (and the input position if saved).

    Raises:
      checkpoints.CheckpointMismatchError: listing the weights, when the
        model (built from changed model flags) does not fit it.
    """
    latest = self.latest_checkpoint()
    if latest is None:
      return False
    checkpoints.check_model_matches(self.model, latest, "train_logdir")
    status = self._checkpoint.restore(latest)
    try:
      status.assert_existing_objects_matched()
    except AssertionError:
      if not self._checkpoint_input():
        raise
      # Saved without --deterministic: the model resumes, the input restarts.
      logging.warning("%s holds no input position; the input pipeline "
                      "restarts from its beginning.", latest)
      status.expect_partial()
    logging.info("Resumed from %s at step %d.", latest, self.global_step)
    return True

  def _restore_or_initialize(self):
    """Resumes from `model_dir`, or runs `init_fn`; then records the model
    config beside the checkpoints."""
    self._restored = True
    restored = None
    if preemption.uses_cluster_handler(self.strategy):
      restored = self._start_cluster_preemption()
    if restored is None:
      restored = self._restore_for_training()
    if not restored and self._init_fn is not None:
      self.init_report = self._init_fn(self.model)
    if self.is_chief and self.task.model_config is not None:
      checkpoints.write_model_config(self.model_dir, self.task.model_config)

  # === Training ===

  def _distributed_dataset(self, input_fn, skip_steps: int = 0):
    """The strategy's dataset; with `skip_steps`, fast-forwarded past the
    batches that many steps consumed (a deterministic resume)."""
    if skip_steps:
      logging.info("Fast-forwarding the input past %d steps.", skip_steps)
      unskipped = input_fn

      def input_fn(context):
        per_pipeline = max(1, context.num_replicas_in_sync //
                           max(1, context.num_input_pipelines))
        return unskipped(context).skip(skip_steps * per_pipeline)

    return self.strategy.distribute_datasets_from_function(input_fn)

  def _make_train_step(self):
    params = self._params
    model_fn = self.model_fn
    strategy = self.strategy

    def compute(features, labels):
      spec = model_fn(features, labels, ModeKeys.TRAIN, params)
      return spec.loss, spec.data_loss

    if self.train_options.jit_compile:
      compute = tf.function(compute, jit_compile=True)

    def step_fn(features, labels, requests):
      # XLA takes no strings (filenames); the model needs only the pixels.
      features = {k: v for k, v in features.items() if v.dtype != tf.string}
      loss, data_loss = compute(features, labels)
      batch = tf.cast(tf.shape(labels)[0], tf.float32)
      # Agree across replicas (and workers) on [stop (SIGTERM), save (time
      # interval)] after this step: any replica's request counts, so all of
      # them save the same steps (saving reads the variables collectively),
      # whatever signal or clock each worker saw. (The identity places the
      # requests on the replica's device, which all_reduce needs.)
      context = tf.distribute.get_replica_context()
      requests = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                    tf.identity(requests))
      return loss, data_loss, batch, requests

    @tf.function
    def train_step(iterator, requests):
      features, labels = next(iterator)
      loss, data_loss, batch, requests = strategy.run(
          step_fn, args=(features, labels, requests))
      mean = tf.distribute.ReduceOp.MEAN
      total = tf.distribute.ReduceOp.SUM
      return (strategy.reduce(mean, loss, axis=None),
              strategy.reduce(mean, data_loss, axis=None),
              strategy.reduce(total, batch, axis=None),
              strategy.reduce(mean, requests, axis=None))

    return train_step

  def _checkpoint_input(self) -> bool:
    """Whether the input position is saved in checkpoints (one replica);
    with several replicas a deterministic resume fast-forwards instead."""
    return (self.train_options.save_input_state and
            self.strategy.num_replicas_in_sync == 1)

  def _freeze_level_at(self, step: int) -> str:
    options = self.train_options
    if options.transfer_steps and step >= options.transfer_steps:
      return "none"
    return options.freeze_level

  def _apply_freeze_level(self, step: int):
    """Applies the freeze level of `step`; retraces the step on a change."""
    level = self._freeze_level_at(step)
    if level == self._applied_freeze_level:
      return
    if level != "none" or self._applied_freeze_level is not None:
      frozen = transfer.apply_freeze_level(
          self.model, level,
          freeze_batch_norm=self.train_options.freeze_batch_norm)
      logging.info("Step %d: freeze level %r: %d layers frozen%s.", step,
                   level, len(frozen),
                   f" ({frozen[0]} ... {frozen[-1]})" if frozen else "")
    self._applied_freeze_level = level
    self._train_step = None  # The trainable variables changed.

  def _apply_quantization(self, step: int):
    """Switches a quantized model's fake-quant ops on at
    --quantize_delay_step (official `quant_delay`); before it the float
    graph trains. Retraces the step (and the evaluator) on a change."""
    config = self.task.model_config
    if config is None or not quantize.is_quantized(self.model):
      return
    active = step >= config.quantize_delay_step
    if quantize.set_active(self.model, active):
      logging.info("Step %d: quantization-aware training %s.", step,
                   "starts" if active else "waits for step %d" %
                   config.quantize_delay_step)
      self._train_step = None
      self._evaluator = None

  def _prepare_training(self, input_fn: Callable):
    """Restores (once) and returns the training iterator of `input_fn`."""
    self._checkpoint_manager()

    def is_new_input():
      return self._train_input is None or self._train_input[0] is not input_fn

    if is_new_input() and self._checkpoint_input():
      # A plain tf.data iterator is checkpointable (a distributed one is not).
      iterator = iter(input_fn(tf.distribute.InputContext()))
      self._checkpoint.input_iterator = iterator
      self._train_input = (input_fn, iterator)
    if not self._restored:
      self._restore_or_initialize()
    if is_new_input():
      skip = self.global_step if self.train_options.save_input_state else 0
      self._train_input = (input_fn,
                           iter(self._distributed_dataset(input_fn, skip)))
    if self._params.gradient_multipliers is None:
      self._params.gradient_multipliers = transfer.gradient_multipliers(
          self.model, self.train_options.last_layer_gradient_multiplier,
          self.train_options.last_layers_contain_logits_only)
    return self._train_input[1]

  def train(self, input_fn: Callable, max_steps: int,
            total_steps: Optional[int] = None) -> int:
    """Trains until the global step reaches `max_steps`.

    Resumes from the latest checkpoint in `model_dir`; when that checkpoint
    is already at `max_steps`, returns without training. A run killed at
    any point loses at most the steps since its last checkpoint; on SIGTERM
    it saves a checkpoint at the current step and raises
    `preemption.TrainingPreempted`. Under MultiWorkerMirroredStrategy with
    several workers, TF's `PreemptionCheckpointHandler` does this (the
    checkpoint is at the step after the one the signal arrived in, on every
    worker; see `preemption.ClusterPreemptionHandler`), and the handler also
    restores the latest checkpoint.

    Args:
      input_fn: `input_fn(input_context) -> tf.data.Dataset` of
        `(features, labels)` with the per-replica batch size.
      max_steps: The global step to stop at.
      total_steps: The step the whole job ends at, for progress and ETA
        (`max_steps` when None; larger inside `train_and_evaluate`).

    Returns:
      The global step reached.

    Raises:
      FloatingPointError: naming the step, when the loss is not finite. The
        last good checkpoint is kept.
      preemption.TrainingPreempted: after saving, on SIGTERM.
    """
    iterator = self._prepare_training(input_fn)
    if self.global_step >= max_steps:
      logging.info("Step %d already reached max_steps %d; nothing to train.",
                   self.global_step, max_steps)
      return self.global_step
    writer = (tf.summary.create_file_writer(self.model_dir) if self.is_chief
              else tf.summary.create_noop_writer())
    cluster = self._cluster_preemption
    with contextlib.ExitStack() as stack:
      stack.enter_context(writer.as_default())
      # Under a cluster, TF's handler takes SIGTERM, saves and raises from
      # `cluster.run`; otherwise the step all-reduces `sigterm.requested`.
      sigterm = stack.enter_context(
          cluster.watching() if cluster else preemption.SigtermWatcher())
      stack.callback(writer.flush)
      step = self._train_loop(iterator, max_steps, total_steps or max_steps,
                              sigterm)
    self._save_unless_saved()
    writer.flush()
    return step

  def _train_loop(self, iterator, max_steps: int, total_steps: int,
                  sigterm) -> int:
    """Runs steps until `max_steps`: logs, summarises and saves on the way."""
    config = self.run_config
    progress = _Progress(self.global_step, total_steps)
    last_save_time = time.time()
    step = self.global_step
    with profiling.StepProfiler(config.profile_logdir,
                                config.profile_steps) as profiler:
      while step < max_steps:
        step, last_save_time = self._loop_step(
            iterator, max_steps, progress, profiler, sigterm, last_save_time)
    return step

  def _loop_step(self, iterator, max_steps: int, progress, profiler, sigterm,
                 last_save_time: float):
    """One step of `_train_loop` with its logging, summaries and saves.

    Returns:
      (global step, time of the last save).
    """
    config = self.run_config
    profiler.before_step()
    loss, data_loss, batch, stop, save_due = self._run_step(
        iterator, getattr(sigterm, "requested", False),
        time.time() - last_save_time > config.save_interval_secs)
    profiler.after_step()
    step = self.global_step
    progress.add_images(batch)
    if not np.isfinite(loss):
      last = self._checkpoint_manager().latest_checkpoint
      raise FloatingPointError(
          f"Loss became {loss} at step {step}; stopping. " + (
              f"The last good checkpoint is {last}." if last else
              "No checkpoint was saved before it (a rerun starts over): "
              "lower --base_learning_rate or check the data."))
    if stop:
      path = self._save()
      self.preempted = True
      raise preemption.TrainingPreempted(step, path)
    if step % config.log_steps == 0 or step == max_steps:
      progress.log(step, loss, data_loss,
                   float(self._params.optimizer.learning_rate))
    if (config.image_summary_steps and step % config.image_summary_steps == 0
        and not self.train_options.save_input_state):
      # Draws a batch of its own, which a deterministic run must not.
      self._write_image_summaries(iterator, step)
    if step % config.save_interval_steps == 0 or save_due:
      self._save()
      last_save_time = time.time()
    return step, last_save_time

  def _run_step(self, iterator, stop_requested: bool, save_requested: bool):
    """One optimizer step on every replica.

    Returns:
      (loss, cross-entropy, images in the global batch, stop, save), where
      stop and save are what the replicas agreed on.
    """
    self._apply_freeze_level(self.global_step)
    self._apply_quantization(self.global_step)
    if self._train_step is None:
      self._train_step = self._make_train_step()
    requests = tf.constant([float(stop_requested), float(save_requested)])
    if self._cluster_preemption:
      loss, data_loss, batch, requests = self._cluster_preemption.run(
          self._train_step, iterator, requests)
    else:
      loss, data_loss, batch, requests = self._train_step(iterator, requests)
    stop, save = requests.numpy() > 0
    return float(loss), float(data_loss), int(batch), stop, save

  def _write_image_summaries(self, iterator, step: int):
    """Input, coloured ground truth and coloured prediction of a few images."""
    features, labels = next(iterator)
    local = self.strategy.experimental_local_results
    model_eval.write_image_summaries(
        self.model, local(features["image"])[0], local(labels)[0], step,
        self.task.colormap if self.task.colormap is not None
        else np.zeros((1, 3), np.uint8),
        self.run_config.num_summary_images)

  # === Evaluation ===

  def evaluate(self,
               input_fn: Callable,
               checkpoint_path: Optional[str] = None,
               eval_dir: Optional[str] = None,
               eval_scales: Sequence[float] = (1.0,),
               add_flipped_images: bool = False) -> Dict[str, object]:
    """Scores one checkpoint on one pass over the eval data
    (`model_eval.ModelEvaluator`).

    Args:
      input_fn: Eval `input_fn` (one pass, padded to the eval crop size, or
        full images at batch size 1).
      checkpoint_path: Checkpoint prefix or folder; `model_dir` when None.
      eval_dir: Where to write eval summaries (skipped when None).
      eval_scales: Input scales whose softmax is averaged (official
        `eval_scales`).
      add_flipped_images: Also average left-right flipped inputs.

    Returns:
      The metrics of `metrics_from_confusion_matrix`, plus `num_images`,
      `global_step`, `checkpoint_path` and `confusion_matrix`.
    """
    path = self.restore_model(checkpoint_path)
    if self._evaluator is None:
      self._evaluator = model_eval.ModelEvaluator(
          self.model, self.task.num_classes, self.task.ignore_label,
          self.strategy, self.task.colormap)
    results = self._evaluator.evaluate(input_fn, eval_scales,
                                       add_flipped_images)
    step = checkpoints.step_of_checkpoint(path)
    results.update(global_step=step, checkpoint_path=path)
    if eval_dir:
      self._evaluator.write_summaries(eval_dir, results, step,
                                      self.run_config.num_summary_images)
    return results

  def train_and_evaluate(self, train_input_fn: Callable,
                         eval_input_fn: Callable, max_steps: int,
                         eval_every_steps: int,
                         eval_dir: Optional[str] = None) -> Dict[str, object]:
    """Alternates training for `eval_every_steps` and evaluating.

    With `train_options.keep_best_checkpoint`, the checkpoint of the best
    mIoU so far is copied into `model_dir/best`
    (`best_checkpoint.keep_if_best`).

    Returns:
      The metrics of the last evaluation.
    """
    step = checkpoints.step_of_checkpoint(self.latest_checkpoint())
    while True:
      target = min(max_steps, (step // eval_every_steps + 1) * eval_every_steps)
      step = self.train(train_input_fn, target, total_steps=max_steps)
      results = self.evaluate(eval_input_fn, eval_dir=eval_dir)
      if self.train_options.keep_best_checkpoint and self.is_chief:
        best_checkpoint.keep_if_best(self.model_dir, results)
      if step >= max_steps:
        return results
