"""Transfer learning: initial checkpoints, last layers, freeze levels.

Official DeepLab starts training from `--tf_initial_checkpoint` and leaves
out the "last layers" when the number of classes changes
(`--initialize_last_layer=false`): the logits only, or also ASPP and the
decoder (`--last_layers_contain_logits_only=false`). It multiplies their
gradients by `--last_layer_gradient_multiplier` (biases by twice that).

Community Keras ports add freeze levels for a transfer stage: train only
the head (`backbone` frozen) or only the logits (`all_but_logits`) for N
steps, then fine-tune everything.

An auxiliary head (`--aux_loss_weight`) counts as a last layer and, since
its classifier depends on num_classes, as a class-dependent one: it is
skipped with `--initialize_last_layer=false` either way and gets
`last_layer_gradient_multiplier`. It trains at every freeze level: it never
feeds the main logits, and keeping it trained during the transfer stage
means that when the backbone is unfrozen, the auxiliary gradient reaching
the backbone comes from a fitted classifier, not a random one.

Checkpoints are object-based (`tf.train.Checkpoint(model=...)`, with or
without `optimizer`): our own `train_logdir` checkpoints and those written
by `core/import_weights.py`. `load_initial_checkpoint` matches each variable
by its place in the model (`core/checkpoints.match_variables`), and it
reports what it loaded, skipped and could not find.
"""

import dataclasses
from typing import Dict, Iterable, List, Optional, Set

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import quantize



def last_layer_names(last_layers_contain_logits_only: bool) -> Set[str]:
  """Top-level layer names that official DeepLab calls the last layers."""
  if last_layers_contain_logits_only:
    return set(deeplab_model.CLASS_DEPENDENT_LAYERS)
  return set(deeplab_model.LAST_LAYERS)


@dataclasses.dataclass
class TransferReport:
  """What `load_initial_checkpoint` did, by variable path.

  Attributes:
    checkpoint_path: The checkpoint prefix read.
    loaded: Variables given the checkpoint's value.
    skipped: Variables of excluded layers, left at their initial value.
    missing: Variables the checkpoint does not hold (initial value kept).
  """

  checkpoint_path: str
  loaded: List[str] = dataclasses.field(default_factory=list)
  skipped: List[str] = dataclasses.field(default_factory=list)
  missing: List[str] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    return (f"Initialised from {self.checkpoint_path}: loaded "
            f"{len(self.loaded)} variables, skipped {len(self.skipped)} "
            f"(last layers), {len(self.missing)} not in the checkpoint.")


def load_initial_checkpoint(model: keras.Model,
                            checkpoint_path: str,
                            initialize_last_layer: bool = True,
                            last_layers_contain_logits_only: bool = False
                            ) -> TransferReport:
  """Loads a checkpoint's model weights into `model`, skipping last layers.

  Args:
    model: The DeepLab model (already built).
    checkpoint_path: A checkpoint prefix, or a folder (its latest one).
    initialize_last_layer: Load the last layers too (same classes).
    last_layers_contain_logits_only: The last layers are the logits only;
      else ASPP, the decoder and the logits.

  Returns:
    A `TransferReport`.

  Raises:
    FileNotFoundError: when there is no such checkpoint.
    ValueError: when a variable that is not skipped has another shape in
      the checkpoint (naming it; usually another number of classes, which
      wants `--initialize_last_layer=false`).
  """
  path = checkpoints.resolve_checkpoint(checkpoint_path,
                                        "tf_initial_checkpoint")
  excluded = set() if initialize_last_layer else last_layer_names(
      last_layers_contain_logits_only)
  match = checkpoints.match_variables(model, path, skip=excluded.__contains__)
  if match.mismatched:
    raise ValueError(
        f"--tf_initial_checkpoint {path}: variable {match.mismatched[0]} "
        "(checkpoint -> model shape). To fine-tune with another number of "
        "classes, pass --initialize_last_layer=false.")
  reader = tf.train.load_checkpoint(path)
  missing = set(match.missing)
  report = TransferReport(checkpoint_path=path)
  for variable in model.weights:
    key, layer_name = match.keys.get(id(variable), (None, None))
    if (layer_name or variable.path.split("/")[0]) in excluded:
      report.skipped.append(variable.path)
    elif variable.path in missing:
      report.missing.append(variable.path)
    else:
      variable.assign(np.asarray(reader.get_tensor(key)).astype(
          variable.dtype))
      report.loaded.append(variable.path)
  logging.info("%s", report.summary())
  if report.skipped:
    logging.info("Not loaded (last layers): %s", ", ".join(report.skipped))
  ranges = {v.path for q in quantize.quantizers(model) for v in q.weights}
  others = [p for p in report.missing if p not in ranges]
  if len(others) < len(report.missing):
    logging.info("%d quantization-range variables start fresh "
                 "(quantization-aware training from a float checkpoint).",
                 len(report.missing) - len(others))
  if others:
    logging.warning("Not in the checkpoint, left at their initial values: %s",
                    ", ".join(others))
  return report


def apply_freeze_level(model: keras.Model, level: str,
                       freeze_batch_norm: bool = False) -> List[str]:
  """Sets which top-level layers train.

  Args:
    model: The DeepLab model.
    level: `none` (all train), `backbone` (only ASPP, decoder and logits
      train) or `all_but_logits` (only the logits train). An auxiliary
      head trains at every level.
    freeze_batch_norm: Keep every BatchNorm frozen whatever the level
      (official `fine_tune_batch_norm=False`).

  Returns:
    Names of the frozen top-level layers that hold weights.

  Raises:
    ValueError: on an unknown level.
  """
  if level not in config_lib.FREEZE_LEVELS:
    raise ValueError("--freeze_level must be one of "
                     f"{', '.join(config_lib.FREEZE_LEVELS)}; "
                     f"got {level!r}.")
  trained = {
      "none": None,
      "backbone": set(deeplab_model.LAST_LAYERS),
      "all_but_logits": {deeplab_model.LOGITS_LAYER,
                         deeplab_model.AUX_HEAD_LAYER},
  }[level]
  frozen = []
  for layer in model.layers:
    train = trained is None or layer.name in trained
    layer.trainable = train
    if not train and layer.weights:
      frozen.append(layer.name)
  if freeze_batch_norm:
    deeplab_layers.freeze_batch_norm(model)
  return frozen


def gradient_multipliers(model: keras.Model, multiplier: float,
                         last_layers_contain_logits_only: bool = False
                         ) -> Dict[str, float]:
  """Official `get_model_gradient_multipliers`: variable path -> multiplier.

  Every variable of the last layers gets `multiplier`, their biases twice
  it. Empty when `multiplier` is 1.
  """
  if multiplier == 1.0:
    return {}
  names = last_layer_names(last_layers_contain_logits_only)
  result = {}
  for layer in model.layers:
    if layer.name not in names:
      continue
    for variable in layer.trainable_weights:
      is_bias = variable.path.endswith("bias")
      result[variable.path] = (2.0 if is_bias else 1.0) * multiplier
  return result


def apply_gradient_multipliers(gradients: Iterable, variables: Iterable,
                               multipliers: Optional[Dict[str, float]]):
  """Scales each gradient by its variable's multiplier."""
  if not multipliers:
    return list(gradients)
  return [g * multipliers[v.path] if g is not None and v.path in multipliers
          else g for g, v in zip(gradients, variables)]
