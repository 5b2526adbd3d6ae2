"""Imports pretrained weights into our models and writes our checkpoint.

Three sources:

* A Keras Applications ImageNet weight file (`.h5`, e.g.
  `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`), for the
  `mobilenet_v2`, `resnet50`, `resnet101` and `xception` variants, whose
  layers keep Keras Applications' names. Matching is by layer name; Keras
  Xception's four unnamed shortcut convs (`conv2d`, `batch_normalization`,
  ...) are matched in file order.
* An official DeepLab TF1 checkpoint (a model-zoo tarball `.tar.gz`, a
  folder holding `model.ckpt*`, or a checkpoint prefix) for xception_*,
  resnet_v1_*, mobilenet_v2, mobilenet_v3_*_seg and nas_* (with ASPP or the
  dense prediction cell), matched through a
  variable-name map
  (`official_variable_map`): e.g. our
  `xception_65.entry_flow.conv1_1` kernel is
  `xception_65/entry_flow/conv1_1/weights`, our `aspp/aspp1/depthwise`
  kernel is `aspp1_depthwise/depthwise_weights`, our `logits` bias is
  `logits/semantic/biases`, our mobilenet_v2 `block_3_expand_BN` gamma is
  `MobilenetV2/expanded_conv_3/expand/BatchNorm/gamma`.
* A keras-deeplab-v3-plus (bonlime) weight file
  (`deeplabv3_xception_tf_dim_ordering_tf_kernels.h5`,
  `deeplabv3_mobilenetv2_tf_dim_ordering_tf_kernels.h5`, `_cityscapes`),
  recognised by its layer names (`entry_flow_conv1_1`, `aspp0`, ...) and
  mapped through the official names (`load_keras_deeplab_h5`;
  docs/import_weights.md).

Every variable is reported as matched (loaded), missing (ours, absent from
the source: keeps its initial value), mismatched (present with another
shape: e.g. the logits when the number of classes differs; left at its
initial value) or unused (in the source, not in our model; optimizer slots
and `global_step` are listed separately as training state).

Output format (what `train.py --tf_initial_checkpoint` and the Runner
restore): an object-based TF2 checkpoint written by
`tf.train.Checkpoint(model=keras_model).write(output_path)`, i.e. the model
is the checkpoint's `model` attribute and its variables hang off the Keras
layer graph. It holds no optimizer or step, so training starts at step 0.
A JSON report (`<output_path>.import_report.json`) lists every variable;
`model_config.json` beside it holds the `ModelConfig` (see
`core/checkpoints.py`), which training, evaluation and export read.

Usage:
  python -m deeplab.core.import_weights --model_variant=xception_65 \\
    --source=xception_65_imagenet.tar.gz --output=/tmp/init/model \\
    --num_classes=21 --atrous_rates=6 --atrous_rates=12 \\
    --atrous_rates=18 --decoder_output_stride=4
"""

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

import h5py
import keras
import numpy as np
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core import io_utils
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils
from deeplab.core.modeling.backbones import keras_app_backbones
from deeplab.core.modeling.backbones import nas_cell

# Variables of a TF1 checkpoint that hold training state, not weights.
_TRAINING_STATE = re.compile(
    r"(^global_step$|/(Momentum|Adam|Adam_1|ExponentialMovingAverage|"
    r"RMSProp|RMSProp_1)$)")


@dataclasses.dataclass
class ImportReport:
  """What an import did with every variable.

  Attributes:
    matched: Source names loaded into our model.
    missing: Our variables with no source variable (kept as initialised).
    mismatched: "name: source shape -> our shape", left as initialised.
    unused: Source variables with no counterpart in our model.
    training_state: Source optimizer slots and step counters (ignored).
  """
  matched: List[str] = dataclasses.field(default_factory=list)
  missing: List[str] = dataclasses.field(default_factory=list)
  mismatched: List[str] = dataclasses.field(default_factory=list)
  unused: List[str] = dataclasses.field(default_factory=list)
  training_state: List[str] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    return (f"matched {len(self.matched)}, missing {len(self.missing)}, "
            f"mismatched {len(self.mismatched)}, unused {len(self.unused)} "
            f"(+{len(self.training_state)} training-state variables)")


# === Keras Applications .h5 ===


def _h5_layers(path: str) -> Dict[str, List[np.ndarray]]:
  """Layer name -> weight arrays of a legacy Keras weight file, in order."""
  with h5py.File(path, "r") as f:
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in group.attrs:
      raise ValueError(
          f"{path} is not a Keras HDF5 weight file (no 'layer_names'); "
          "expected e.g. resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5.")
    layers = {}
    for name in group.attrs["layer_names"]:
      name = name.decode() if isinstance(name, bytes) else str(name)
      g = group[name]
      weight_names = [n.decode() if isinstance(n, bytes) else str(n)
                      for n in g.attrs.get("weight_names", [])]
      if weight_names:
        layers[name] = [np.asarray(g[n]) for n in weight_names]
  return layers


def _rename_unnamed_xception_layers(layers, model):
  """Maps Keras Xception's unnamed shortcut layers onto our named ones."""
  ours = {l.name for l in model.layers}
  if keras_app_backbones.XCEPTION_SHORTCUTS[0] not in ours:
    return layers
  unnamed_conv = [n for n in layers if re.fullmatch(r"conv2d(_\d+)?", n)]
  unnamed_bn = [n for n in layers
                if re.fullmatch(r"batch_normalization(_\d+)?", n)]
  renamed = dict(layers)
  for target, conv, bn in zip(keras_app_backbones.XCEPTION_SHORTCUTS,
                              unnamed_conv, unnamed_bn):
    renamed[target] = renamed.pop(conv)
    renamed[f"{target}_bn"] = renamed.pop(bn)
  return renamed


def load_keras_h5(model: keras.Model, path: str) -> ImportReport:
  """Loads a Keras Applications weight file into `model` by layer name.

  Args:
    model: One of our models (or backbones) with Keras Applications names.
    path: The `.h5` weight file (legacy Keras HDF5 format, as downloaded by
      `keras.applications.*(weights="imagenet")`).

  Returns:
    The `ImportReport` (names are layer names).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if it is not a Keras weight file.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"Keras weight file not found: {path}")
  layers = _rename_unnamed_xception_layers(_h5_layers(path), model)
  report = ImportReport()
  for layer in model.layers:
    ours = layer.get_weights()
    if not ours:
      continue
    source = layers.pop(layer.name, None)
    if source is None:
      report.missing.append(layer.name)
    elif [w.shape for w in source] != [w.shape for w in ours]:
      report.mismatched.append(
          f"{layer.name}: {[w.shape for w in source]} -> "
          f"{[w.shape for w in ours]}")
    else:
      layer.set_weights(source)
      report.matched.append(layer.name)
  report.unused = sorted(layers)
  return report


# === Official TF1 checkpoints ===

_MOBILENET_BLOCK = re.compile(r"block_(\d+)_(expand|depthwise|project)(_BN)?")


def _mobilenet_scope(layer_name: str) -> Optional[str]:
  """Official MobilenetV2 scope of one of our (Keras-named) layers."""
  if layer_name == "Conv1":
    return "MobilenetV2/Conv"
  if layer_name == "bn_Conv1":
    return "MobilenetV2/Conv/BatchNorm"
  match = re.fullmatch(r"expanded_conv_(depthwise|project)(_BN)?", layer_name)
  if match:
    return ("MobilenetV2/expanded_conv/" + match.group(1) +
            ("/BatchNorm" if match.group(2) else ""))
  match = _MOBILENET_BLOCK.fullmatch(layer_name)
  if match:
    return (f"MobilenetV2/expanded_conv_{match.group(1)}/{match.group(2)}" +
            ("/BatchNorm" if match.group(3) else ""))
  return None


def _leaf_name(layer, attr: str, scope: str) -> str:
  """Official variable name of weight `attr` of a leaf layer at `scope`."""
  if isinstance(layer, keras.layers.BatchNormalization):
    return f"{scope}/{attr}"
  if attr == "bias":
    return f"{scope}/biases"
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    return f"{scope}/depthwise_weights"
  if isinstance(layer, keras.layers.SeparableConv2D):
    # slim.separable_conv2d (the NAS cells): both kernels in one scope.
    return f"{scope}/{attr.replace('_kernel', '_weights')}"
  return f"{scope}/weights"


# Our composite-layer leaf -> official scope suffix and BN flag.
_HEAD_LEAVES = {
    "conv": ("", False), "bn": ("", True),
    "depthwise": ("_depthwise", False), "depthwise_bn": ("_depthwise", True),
    "pointwise": ("_pointwise", False), "pointwise_bn": ("_pointwise", True),
}
# Official DensePredictionCell.build_cell scope: `meta_architecture`.
_HEAD_PREFIX = {"aspp": "", "decoder": "decoder/",
                "dense_prediction_cell": "meta_architecture/"}


def _head_variable_name(head: keras.layers.Layer, parts: List[str]) -> str:
  """Official name of a weight of ASPP or the decoder (`parts`: its path).

  Conv blocks (`aspp1/depthwise_bn/gamma`) map through `_HEAD_LEAVES`;
  plain convs with a bias and no BatchNorm (the squeeze-and-excitation
  image-pooling conv, the decoder convs under `decoder_output_is_logits`)
  have the path `aspp/image_pooling/kernel`.
  """
  branch, attr = parts[1], parts[-1]
  if len(parts) == 3:
    return (f"{_HEAD_PREFIX[head.name]}{branch}/"
            f"{'biases' if attr == 'bias' else 'weights'}")
  suffix, is_bn = _HEAD_LEAVES[parts[2]]
  match = re.fullmatch(r"decoder_conv(\d+)", branch)
  if (head.name == "decoder" and match and not head.use_separable_conv and
      not head.sum_merge):
    # slim.repeat(..., scope="decoder_conv0"): decoder_conv0/decoder_conv0_1.
    branch = f"decoder_conv0/decoder_conv0_{int(match.group(1)) + 1}"
  scope = f"{_HEAD_PREFIX[head.name]}{branch}{suffix}"
  if is_bn:
    return f"{scope}/BatchNorm/{attr}"
  return (f"{scope}/depthwise_weights" if parts[2] == "depthwise"
          else f"{scope}/weights")


def official_variable_map(model: keras.Model) -> Dict[str, keras.Variable]:
  """Official DeepLab TF1 variable name -> our variable, for every weight.

  Covers the backbones with official names (xception_*, resnet_v1_*,
  mobilenet_v3_*, nas_pnasnet (`pnasnet/...`), nas_hnasnet (`hnasnet/...`):
  layer names are the scopes; mobilenet_v2: Keras names mapped to
  `MobilenetV2/...`), ASPP (`image_pooling`, `aspp0`, `aspp{i}_depthwise`,
  `concat_projection`), the dense prediction cell
  (`meta_architecture/branch{i}_depthwise`, `.../concat_projection`), the
  decoder (`decoder/feature_projection0`, `decoder/decoder_conv{i}_depthwise`)
  and `logits/semantic`. NAS drop-path step counters (training state; the
  official schedule reads `global_step`) are not weights and are left out.

  Raises:
    ValueError: if a variable has no official counterpart (e.g. a Keras
      Applications variant, which imports from .h5 instead).
  """
  mapping = {}
  for layer in model.layers:
    if isinstance(layer, nas_cell.DropPath):
      continue
    for weight in layer.weights:
      parts = weight.path.split("/")
      attr = parts[-1]
      if layer.name == "logits":
        name = "logits/semantic/" + ("biases" if attr == "bias" else "weights")
      elif layer.name in _HEAD_PREFIX:
        name = _head_variable_name(layer, parts)
      else:
        scope = _mobilenet_scope(layer.name)
        if scope is None:
          if "." not in layer.name:
            raise ValueError(
                f"Layer {layer.name!r} has no official DeepLab variable; "
                "official checkpoints serve xception_41/65/71, resnet_v1_*, "
                "mobilenet_v2, mobilenet_v3_*_seg and nas_* (Keras Applications "
                "variants import .h5).")
          scope = backbone_utils.official_scope(layer.name)
        name = _leaf_name(layer, attr, scope)
      mapping[name] = weight
  return mapping


def load_official_checkpoint(model: keras.Model, source: str) -> ImportReport:
  """Loads an official DeepLab TF1 checkpoint into `model` by name map.

  Args:
    model: Our model (xception_*, resnet_v1_*, mobilenet_v2 variants).
    source: Checkpoint prefix, folder, or model-zoo tarball.

  Returns:
    The `ImportReport` (names are official variable names).
  """
  reader = tf.train.load_checkpoint(
      checkpoints.resolve_checkpoint(source, "source"))
  shapes = reader.get_variable_to_shape_map()
  report = ImportReport()
  mapping = official_variable_map(model)
  for name, variable in sorted(mapping.items()):
    if name not in shapes:
      report.missing.append(name)
    elif tuple(shapes[name]) != tuple(variable.shape):
      report.mismatched.append(
          f"{name}: {tuple(shapes[name])} -> {tuple(variable.shape)}")
    else:
      variable.assign(reader.get_tensor(name))
      report.matched.append(name)
  for name in sorted(set(shapes) - set(mapping)):
    if _TRAINING_STATE.search(name):
      report.training_state.append(name)
    else:
      report.unused.append(name)
  return report


# === keras-deeplab-v3-plus (bonlime) .h5 ===
#
# The tf.keras DeepLabv3+ of github.com/bonlime/keras-deeplab-v3-plus
# (`model.py`, `Deeplabv3`) ships weight files converted from the official
# checkpoints (`deeplabv3_xception_tf_dim_ordering_tf_kernels.h5`,
# `deeplabv3_mobilenetv2_tf_dim_ordering_tf_kernels.h5` and the
# `_cityscapes` ones), in legacy Keras HDF5 layout, with the official scopes
# flattened into layer names: `entry_flow_block1_separable_conv1_depthwise`,
# `middle_flow_unit_3_...`, `expanded_conv_5_project_BN`, `aspp1_pointwise`,
# `decoder_conv0_depthwise_BN`, `logits_semantic`. Each name is mapped back
# to its official variable name, then onto our model through
# `official_variable_map`. Its BatchNorms use epsilon 1e-3 in the backbone
# and 1e-5 in ASPP and the decoder (as official model.py); where our layer's
# epsilon differs, gamma is rescaled by sqrt(var + ours) / sqrt(var + theirs),
# which gives the same inference output.

_SEED_MARKERS = ("entry_flow_conv1_1", "Conv_BN", "aspp0", "concat_projection")
_SEED_HEAD_EPSILON = 1e-5
_SEED_BACKBONE_EPSILON = 1e-3
_SEED_SCOPES = (
    (re.compile(r"entry_flow_(conv1_\d)"), "{backbone}/entry_flow/{0}"),
    (re.compile(r"(entry_flow|exit_flow)_block(\d+)_(.+)"),
     "{backbone}/{0}/block{1}/unit_1/xception_module/{2}"),
    (re.compile(r"middle_flow_unit_(\d+)_(.+)"),
     "{backbone}/middle_flow/block1/unit_{0}/xception_module/{1}"),
    (re.compile(r"Conv"), "MobilenetV2/Conv"),
    (re.compile(r"expanded_conv_(depthwise|project)"),
     "MobilenetV2/expanded_conv/{0}"),
    (re.compile(r"expanded_conv_(\d+)_(expand|depthwise|project)"),
     "MobilenetV2/expanded_conv_{0}/{1}"),
    (re.compile(r"(image_pooling|aspp0|concat_projection|aspp\d_depthwise|"
                r"aspp\d_pointwise)"), "{0}"),
    (re.compile(r"(feature_projection0|decoder_conv\d_(?:depthwise|pointwise))"),
     "decoder/{0}"),
    (re.compile(r"(?:custom_)?logits_semantic"), "logits/semantic"),
)
_SEED_WEIGHT_NAMES = {
    "kernel": "weights", "depthwise_kernel": "depthwise_weights",
    "bias": "biases", "gamma": "BatchNorm/gamma", "beta": "BatchNorm/beta",
    "moving_mean": "BatchNorm/moving_mean",
    "moving_variance": "BatchNorm/moving_variance",
}


def _h5_named_weights(path: str) -> Dict[str, Dict[str, np.ndarray]]:
  """Layer name -> {weight name without scope and ':0' -> array}."""
  with h5py.File(path, "r") as f:
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in group.attrs:
      raise ValueError(f"{path} is not a Keras HDF5 weight file (no "
                       "'layer_names').")
    layers = {}
    for name in group.attrs["layer_names"]:
      name = name.decode() if isinstance(name, bytes) else str(name)
      weights = {}
      for weight in group[name].attrs.get("weight_names", []):
        weight = weight.decode() if isinstance(weight, bytes) else str(weight)
        short = weight.rsplit("/", 1)[-1].split(":")[0]
        weights[short] = np.asarray(group[name][weight])
      if weights:
        layers[name] = weights
  return layers


def is_keras_deeplab_h5(path: str) -> bool:
  """True for a keras-deeplab-v3-plus weight file (not Keras Applications)."""
  try:
    with h5py.File(path, "r") as f:
      group = f["model_weights"] if "model_weights" in f else f
      names = {n.decode() if isinstance(n, bytes) else str(n)
               for n in group.attrs.get("layer_names", [])}
  except OSError:
    return False
  return any(marker in names for marker in _SEED_MARKERS)


def _seed_scope(layer_name: str, backbone: str) -> Optional[str]:
  """Official scope of a keras-deeplab-v3-plus layer (`_BN`: its BatchNorm)."""
  base = layer_name[:-3] if layer_name.endswith("_BN") else layer_name
  for pattern, template in _SEED_SCOPES:
    match = pattern.fullmatch(base)
    if match:
      return template.format(*match.groups(), backbone=backbone)
  return None


def _batch_norm_epsilons(model: keras.Model) -> Dict[str, float]:
  """Our gamma variable path -> its BatchNorm's epsilon."""
  return {layer.gamma.path: layer.epsilon
          for layer in deeplab_layers.iter_batch_norm_layers(model)
          if layer.gamma is not None}


def _seed_arrays(path: str, model: keras.Model, mapping) -> Tuple[
    Dict[str, np.ndarray], List[str]]:
  """Official variable name -> array of a seed .h5; and unmapped weights."""
  backbone = next((n.split("/")[0] for n in mapping
                   if n.startswith("xception")), "xception_65")
  epsilons = _batch_norm_epsilons(model)
  arrays, unmapped = {}, []
  for layer, weights in _h5_named_weights(path).items():
    scope = _seed_scope(layer, backbone)
    if scope is None or any(w not in _SEED_WEIGHT_NAMES for w in weights):
      unmapped.extend(f"{layer}/{w}" for w in weights)
      continue
    named = {}
    for weight, array in weights.items():
      official = _SEED_WEIGHT_NAMES[weight]
      if official == "weights" and scope.endswith("depthwise"):
        official = "depthwise_weights"  # Keras 3 calls it `kernel` too.
      named[f"{scope}/{official}"] = array
    gamma = f"{scope}/BatchNorm/gamma"
    if gamma in named and gamma in mapping:
      theirs = (_SEED_HEAD_EPSILON if not scope.startswith(
          (backbone, "MobilenetV2")) else _SEED_BACKBONE_EPSILON)
      ours = epsilons.get(mapping[gamma].path, theirs)
      variance = named[f"{scope}/BatchNorm/moving_variance"]
      named[gamma] = named[gamma] * np.sqrt((variance + ours) /
                                            (variance + theirs))
    arrays.update(named)
  return arrays, unmapped


def load_keras_deeplab_h5(model: keras.Model, path: str) -> ImportReport:
  """Loads a keras-deeplab-v3-plus weight file into `model`.

  Args:
    model: Our xception_65 or mobilenet_v2 DeepLab built like the file's
      network (see docs/import_weights.md for the matching ModelConfig).
    path: `deeplabv3_{xception,mobilenetv2}_tf_dim_ordering_tf_kernels*.h5`.

  Returns:
    The `ImportReport` (names are official variable names; `unused` holds
    the file's weights with no official counterpart).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"Keras weight file not found: {path}")
  mapping = official_variable_map(model)
  arrays, unmapped = _seed_arrays(path, model, mapping)
  report = ImportReport()
  for name, variable in sorted(mapping.items()):
    if name not in arrays:
      report.missing.append(name)
    elif arrays[name].shape != tuple(variable.shape):
      report.mismatched.append(
          f"{name}: {arrays[name].shape} -> {tuple(variable.shape)}")
    else:
      variable.assign(arrays[name])
      report.matched.append(name)
  report.unused = sorted(set(arrays) - set(mapping)) + sorted(unmapped)
  return report


def import_weights(model: keras.Model, source: str) -> ImportReport:
  """Loads `source` (.h5 or official checkpoint) into `model`."""
  if source.endswith((".h5", ".hdf5")):
    if is_keras_deeplab_h5(source):
      return load_keras_deeplab_h5(model, source)
    return load_keras_h5(model, source)
  return load_official_checkpoint(model, source)


def write_checkpoint(model: keras.Model, output_path: str,
                     report: ImportReport,
                     model_config: Optional[config_lib.ModelConfig] = None
                     ) -> str:
  """Writes `model` as our checkpoint plus the JSON import report.

  With `model_config`, also writes `model_config.json` beside it
  (`core/checkpoints.write_model_config`), so that training, evaluation
  and export build this model without repeating the model flags.

  Returns:
    The checkpoint prefix written (`tf.train.Checkpoint(model=...)`).
  """
  folder = os.path.dirname(os.path.abspath(output_path))
  os.makedirs(folder, exist_ok=True)
  path = tf.train.Checkpoint(model=model).write(output_path)
  io_utils.atomic_write_json(output_path + ".import_report.json",
                             dataclasses.asdict(report))
  if model_config is not None:
    checkpoints.write_model_config(folder, model_config)
  return path
