"""Checkpoints: find one, restore a model from it, and read its model config.

One place for what training, evaluation, export, transfer learning and the
weight importer all need:

* `resolve_checkpoint`: a checkpoint prefix from a prefix, a folder (its
  `checkpoint` file's latest, as a train_logdir holds; else the first
  `*.index` below it) or a model-zoo tarball (`.tar.gz`, extracted).
* `restore_model`: loads a checkpoint's `model` weights into a Keras model
  and fails, listing them, when any model weight is not in the checkpoint
  or has another shape there (a raw restore would leave it at its initial
  value, or fail with a bare shape error).
* `write_model_config` / `read_model_config`: the `ModelConfig` a model was
  built with travels beside its checkpoints as `model_config.json`
  (written by training and by `core/import_weights.py`), so evaluation,
  export and a resumed training build the same network without repeating
  the model flags. Checkpoints written before it existed have none; the
  flags then describe the model, as before.

Checkpoints are object-based (`tf.train.Checkpoint(model=...)`, with or
without `optimizer`); each variable is matched by its place in the model's
object graph, not by a name that could drift.

Example:

  config = checkpoints.read_model_config("/runs/voc")  # None if absent.
  model = deeplab_model.build_deeplab_model(
      checkpoints.inference_model_config(config))
  prefix = checkpoints.restore_model(model, "/runs/voc")
"""

import dataclasses
import glob
import json
import os
import re
import tarfile
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

from absl import logging
import keras
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from deeplab.core import config as config_lib
from deeplab.core import io_utils

MODEL_CONFIG_FILE = "model_config.json"
MODEL_CONFIG_VERSION = 1
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)$")


class CheckpointMismatchError(ValueError):
  """A checkpoint does not hold every weight of the model, or not in its
  shape: usually it was trained with other model flags."""


# === Finding a checkpoint ===


def step_of_checkpoint(path: str) -> int:
  """The global step a checkpoint was saved at, from its `ckpt-N` name."""
  match = _CHECKPOINT_NAME.search(path or "")
  return int(match.group(1)) if match else 0


def latest_checkpoint(folder: str) -> Optional[str]:
  """The newest checkpoint of a train_logdir (its `checkpoint` file), or
  None."""
  return tf.train.latest_checkpoint(folder)


def _extract(tarball: str, workdir: Optional[str], flag_name: str) -> str:
  if not tf.io.gfile.exists(tarball):
    raise FileNotFoundError(f"--{flag_name}: checkpoint tarball not found: "
                            f"{tarball}")
  workdir = workdir or tempfile.mkdtemp(prefix="deeplab_checkpoint_")
  with tarfile.open(tarball) as tar:
    tar.extractall(workdir, filter="data")
  return workdir


def resolve_checkpoint(path: str, flag_name: str = "checkpoint_path",
                       workdir: Optional[str] = None) -> str:
  """A checkpoint prefix from a prefix, a folder or a model-zoo tarball.

  Args:
    path: A checkpoint prefix (`.../ckpt-500`, `.../model.ckpt`), a folder
      (a train_logdir: the latest checkpoint its `checkpoint` file names;
      otherwise the first `*.index` below it, e.g. an extracted model-zoo
      folder) or a `.tar.gz` model-zoo tarball (extracted into `workdir`,
      a new temporary folder when None).
    flag_name: The flag that gave `path`, named in errors.
    workdir: Where a tarball is extracted.

  Returns:
    The checkpoint prefix (`<prefix>.index` exists).

  Raises:
    FileNotFoundError: naming the flag and `path` when it holds no
      checkpoint.
  """
  if not path:
    raise FileNotFoundError(f"--{flag_name} is empty: pass a checkpoint "
                            "prefix, a train_logdir or a model-zoo tarball.")
  if path.endswith(TARBALL_SUFFIXES):
    path = _extract(path, workdir, flag_name)
  if tf.io.gfile.isdir(path):
    latest = latest_checkpoint(path)
    if latest is not None:
      return latest
    indexes = sorted(glob.glob(os.path.join(path, "**", "*.index"),
                               recursive=True))
    if not indexes:
      raise FileNotFoundError(
          f"--{flag_name} {path!r} is a folder without a checkpoint (no "
          "*.index under it): train first, or pass a checkpoint prefix.")
    return indexes[0][:-len(".index")]
  if not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(
        f"--{flag_name} {path!r} does not exist (expected {path}.index, a "
        "train_logdir or a model-zoo .tar.gz).")
  return path


# === Matching and restoring a model ===


def checkpoint_object_graph(reader):
  """The object graph of an object-based checkpoint."""
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
  return graph


def checkpoint_keys(model: keras.Model, reader) -> Dict[int, Tuple[str, str]]:
  """Maps id(variable) -> (checkpoint key, top-level layer name).

  Walks the checkpoint's object graph under its `model` object alongside
  the live model. Variables the checkpoint does not hold are absent.

  Raises:
    ValueError: when the checkpoint has no `model` object (not written by
      `tf.train.Checkpoint(model=...)`).
  """
  if _OBJECT_GRAPH_KEY not in reader.get_variable_to_shape_map():
    raise ValueError(
        "The checkpoint is not object-based (a TF1 checkpoint?): import it "
        "first with `python -m deeplab.core.import_weights`.")
  graph = checkpoint_object_graph(reader)
  model_nodes = [c.node_id for c in graph.nodes[0].children
                 if c.local_name == "model"]
  if not model_nodes:
    raise ValueError(
        "The checkpoint has no 'model' object: expected one written by "
        "tf.train.Checkpoint(model=...) (a train_logdir checkpoint or "
        "core/import_weights.py).")
  found = {}
  visited = set()

  def walk(node_id, obj, layer_name):
    if node_id in visited:
      return
    visited.add(node_id)
    node = graph.nodes[node_id]
    for attribute in node.attributes:
      if attribute.name == "VARIABLE_VALUE":
        found[id(obj)] = (attribute.checkpoint_key, layer_name)
    if not hasattr(obj, "_trackable_children"):
      return
    children = obj._trackable_children(save_type="checkpoint")  # pylint: disable=protected-access
    for child in node.children:
      live = children.get(child.local_name)
      if live is None:
        continue
      name = layer_name
      if name is None and isinstance(live, keras.layers.Layer) and (
          live is not model):
        name = live.name
      walk(child.node_id, live, name)

  walk(model_nodes[0], model, None)
  return found


@dataclasses.dataclass
class VariableMatch:
  """How a model's weights line up with a checkpoint.

  Attributes:
    checkpoint_path: The checkpoint prefix.
    keys: id(variable) -> (checkpoint key, top-level layer name), for the
      variables the checkpoint holds.
    missing: Paths of model variables the checkpoint does not hold.
    mismatched: "path: checkpoint shape -> model shape" of variables held
      with another shape.
  """

  checkpoint_path: str
  keys: Dict[int, Tuple[str, str]]
  missing: List[str] = dataclasses.field(default_factory=list)
  mismatched: List[str] = dataclasses.field(default_factory=list)


def match_variables(model: keras.Model, checkpoint_path: str,
                    skip: Optional[Callable[[str], bool]] = None
                    ) -> VariableMatch:
  """Lines up every weight of `model` with the checkpoint's.

  Args:
    model: A built Keras model.
    checkpoint_path: A checkpoint prefix.
    skip: Optional predicate on a top-level layer name: its variables are
      neither reported missing nor mismatched (e.g. last layers that
      transfer learning leaves out).
  """
  reader = tf.train.load_checkpoint(checkpoint_path)
  shapes = reader.get_variable_to_shape_map()
  keys = checkpoint_keys(model, reader)
  match = VariableMatch(checkpoint_path, keys)
  for variable in model.weights:
    key, layer = keys.get(id(variable), (None, None))
    layer = layer or variable.path.split("/")[0]
    if skip is not None and skip(layer):
      continue
    if key is None or key not in shapes:
      match.missing.append(variable.path)
    elif list(shapes[key]) != list(variable.shape):
      match.mismatched.append(f"{variable.path}: {list(shapes[key])} -> "
                              f"{list(variable.shape)}")
  return match


def _mismatch_message(match: VariableMatch, flag_name: str) -> str:
  parts = []
  if match.mismatched:
    parts.append(f"{len(match.mismatched)} model weights have another shape "
                 f"in it (checkpoint -> model): "
                 f"{', '.join(match.mismatched)}")
  if match.missing:
    parts.append(f"{len(match.missing)} model weights are not in it: "
                 f"{', '.join(match.missing)}")
  return (f"--{flag_name} {match.checkpoint_path} does not fit the model "
          f"built from the model flags: {'; '.join(parts)}. Build the model "
          "the checkpoint was trained with (its model_config.json, or the "
          "same model flags).")


def check_model_matches(model: keras.Model, checkpoint_path: str,
                        flag_name: str = "checkpoint_path") -> VariableMatch:
  """Raises `CheckpointMismatchError` (one line, listing the variables)
  unless the checkpoint holds every weight of `model` in its shape."""
  match = match_variables(model, checkpoint_path)
  if match.missing or match.mismatched:
    raise CheckpointMismatchError(_mismatch_message(match, flag_name))
  return match


def restore_model(model: keras.Model, path: str,
                  flag_name: str = "checkpoint_path") -> str:
  """Loads a checkpoint's model weights into `model` (the one restore for
  evaluation, export and inference; no optimizer state).

  Every weight of `model` must be in the checkpoint with its shape; what
  the checkpoint holds beyond the model (optimizer slots, an auxiliary
  head that evaluation does not build, the step) is left out.

  Args:
    model: A built Keras model.
    path: A checkpoint prefix, folder or tarball (`resolve_checkpoint`).
    flag_name: The flag that gave `path`, named in errors.

  Returns:
    The checkpoint prefix loaded.

  Raises:
    FileNotFoundError: when there is no checkpoint at `path`.
    CheckpointMismatchError: listing the model weights that the checkpoint
      lacks or holds with another shape.
  """
  prefix = resolve_checkpoint(path, flag_name)
  check_model_matches(model, prefix, flag_name)
  tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
  return prefix


# === The model config beside the checkpoints ===


def _config_folder(path: str) -> str:
  """The folder a checkpoint prefix or train_logdir keeps its config in."""
  if path.endswith(TARBALL_SUFFIXES):
    return ""
  return path if tf.io.gfile.isdir(path) else os.path.dirname(path)


def model_config_path(path: str) -> str:
  """`model_config.json` of a train_logdir, or of a checkpoint prefix's
  folder."""
  return os.path.join(_config_folder(path), MODEL_CONFIG_FILE)


def write_model_config(folder: str, model_config: config_lib.ModelConfig
                       ) -> str:
  """Writes `folder/model_config.json` atomically; returns its path."""
  path = os.path.join(folder, MODEL_CONFIG_FILE)
  io_utils.atomic_write_json(path, {
      "format_version": MODEL_CONFIG_VERSION,
      "model_config": dataclasses.asdict(model_config)})
  return path


def model_config_from_dict(values: dict, source: str = "model_config"
                           ) -> config_lib.ModelConfig:
  """A `ModelConfig` from its JSON form (lists become tuples).

  Raises:
    ValueError: naming `source` and the unknown fields.
  """
  known = {f.name for f in dataclasses.fields(config_lib.ModelConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f"{source}: unknown ModelConfig fields {unknown} "
                     "(written by a newer version?).")
  values = dict(values)
  for field in ("aspp_branches", "dense_prediction_cell_config"):
    if values.get(field) is not None:
      values[field] = tuple(values[field])
  return config_lib.ModelConfig(**values)


def read_model_config(path: str) -> Optional[config_lib.ModelConfig]:
  """The `ModelConfig` saved beside a checkpoint, or None without one.

  Args:
    path: A train_logdir, or a checkpoint prefix (its folder is read).

  Raises:
    ValueError: naming the file when it is not a model config.
  """
  if not path or path.endswith(TARBALL_SUFFIXES):
    return None  # A model-zoo tarball carries no config of ours.
  config_path = model_config_path(path)
  if not tf.io.gfile.exists(config_path):
    return None
  try:
    with tf.io.gfile.GFile(config_path) as f:
      data = json.load(f)
    return model_config_from_dict(data["model_config"], config_path)
  except (KeyError, TypeError, json.JSONDecodeError) as error:
    raise ValueError(
        f"{config_path} is not a model config: {error!r}") from None


def inference_model_config(model_config: config_lib.ModelConfig
                           ) -> config_lib.ModelConfig:
  """The config to build for evaluation, export and inference: without the
  auxiliary head (training only; its weights stay in the checkpoint),
  without cross-replica BatchNorm and without NAS drop path (its step
  counters stay in the checkpoint)."""
  return dataclasses.replace(model_config, aux_head=False,
                             sync_batch_norm=False, drop_path_keep_prob=1.0)


# Fields that change how a model trains, not the weights it holds: a
# command line may set them on top of a saved config without contradiction.
TRAINING_ONLY_FIELDS = ("batch_norm_momentum", "weight_decay",
                        "sync_batch_norm", "aspp_dropout_rate",
                        "aux_head_dropout_rate", "backbone_initializer",
                        "drop_path_keep_prob", "drop_path_total_steps")


def _same_quantization(field: str, want, have) -> bool:
  """Whether two `quantize_delay_step` values build the same model (both
  quantized, or both not): official export_model.py and eval.py take any
  value >= 0, the step only matters to training."""
  return field == "quantize_delay_step" and (want >= 0) == (have >= 0)


def merge_model_config(saved: config_lib.ModelConfig,
                       given: config_lib.ModelConfig,
                       explicit: Dict[str, str],
                       override: bool = False,
                       source: str = "the checkpoint"
                       ) -> config_lib.ModelConfig:
  """The model config to build: the saved one, checked against the flags.

  Args:
    saved: The config saved beside the checkpoint.
    given: The config built from the command line.
    explicit: ModelConfig field -> flag name, for the fields whose flags
      were given explicitly (absl `FLAGS[name].present`).
    override: Let the explicit flags replace the saved values (reported
      loudly) instead of failing.
    source: Names the saved config in messages.

  Returns:
    `saved`, with the explicit values of training-only fields (and, with
    `override`, of every field) taken from `given`.

  Raises:
    ValueError: naming the first explicit flag that contradicts the saved
      config, with both values.
  """
  changes = {}
  for field, flag in explicit.items():
    want, have = getattr(given, field), getattr(saved, field)
    if want == have or _same_quantization(field, want, have):
      continue
    if field in TRAINING_ONLY_FIELDS:
      logging.info("--%s=%s replaces %s's %s.", flag, want, source, have)
    elif override:
      logging.warning("OVERRIDING the model config of %s: --%s=%s (it was "
                      "trained with %s).", source, flag, want, have)
    else:
      raise ValueError(
          f"--{flag}={want} contradicts the model config of {source}, which "
          f"has {field}={have}. Drop the flag (the model is read from "
          f"{MODEL_CONFIG_FILE}), or pass --override_model_config.")
    changes[field] = want
  return dataclasses.replace(saved, **changes)
