"""The dense prediction cell (DPC; Chen et al., NeurIPS 2018, "Searching for
Efficient Multi-Scale Architectures for Dense Image Prediction").

A searched replacement for ASPP: branches that each read the backbone
feature or an earlier branch, concatenated, then projected. Official
`core/dense_prediction_cell.py` describes the cell by a JSON list
(`--dense_prediction_cell_json`), one object per branch:

* `op`: `conv` (1x1: conv + BN + ReLU; otherwise a split separable conv:
  depthwise + BN + ReLU, pointwise + BN + ReLU) or `pyramid_pooling`
  (average pool over a grid cell, 1x1 conv + BN + ReLU, bilinear resize
  back);
* `kernel`: 1 or 3 (or `[k, k]`); `rate`: `[rate_height, rate_width]` of
  the depthwise conv (multiplied by 16 / output_stride, official
  `conv_rate_multiplier`); `grid_size`: `[rows, cols]` of a pyramid
  pooling; `input`: -1 for the backbone feature, else the index of an
  earlier branch.

Official scopes (what `import_weights` maps to): `meta_architecture/
branch{i}` (1x1), `meta_architecture/branch{i}_depthwise` and
`_pointwise` (separable), `meta_architecture/concat_projection`. Every
BatchNorm uses epsilon 1e-5 and ReLU (not ReLU6), as official
`DensePredictionCell.build_cell`, whatever the backbone uses.

The zoo's best Cityscapes models (xception71_dpc) use the preset
`dense_prediction_cell_branch5_top1_cityscapes`, shipped in `dpc_configs/`.
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import keras
from keras import ops

from deeplab.core.modeling import layers as deeplab_layers

PRESETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "dpc_configs")
OPERATIONS = ("conv", "pyramid_pooling")
_FLAG = "--dense_prediction_cell_json"


def preset_names() -> List[str]:
  """Names of the shipped presets (file names without `.json`)."""
  return sorted(name[:-len(".json")] for name in os.listdir(PRESETS_DIR)
                if name.endswith(".json"))


def load_config(value: str) -> List[Dict[str, Any]]:
  """The validated branch list of a preset name or a JSON file path.

  Args:
    value: A preset name (`dense_prediction_cell_branch5_top1_cityscapes`,
      with or without `.json`) or the path of an official-format JSON file.

  Raises:
    ValueError: naming the flag, for an unknown preset, unreadable JSON or
      an invalid branch.
  """
  preset = os.path.join(PRESETS_DIR, os.path.basename(value))
  if not preset.endswith(".json"):
    preset += ".json"
  path = value if os.path.isfile(value) else preset
  if not os.path.isfile(path):
    raise ValueError(f"{_FLAG}={value!r} is neither a JSON file nor a preset "
                     f"(presets: {', '.join(preset_names())}).")
  try:
    with open(path, encoding="utf-8") as f:
      branches = json.load(f)
  except (OSError, json.JSONDecodeError) as error:
    raise ValueError(f"{_FLAG}: cannot read {path}: {error}") from None
  return validate_config(branches)


def _pair(value, what: str, index: int) -> List[int]:
  values = value if isinstance(value, (list, tuple)) else [value, value]
  if len(values) != 2 or min(int(v) for v in values) < 1:
    raise ValueError(f"{_FLAG} branch {index}: {what} must be a positive "
                     f"int or two, got {value!r}.")
  return [int(v) for v in values]


def _validate_branch(branch, index: int) -> Dict[str, Any]:
  """One branch in normal form (lists of two ints; `input` an int)."""
  if not isinstance(branch, dict) or branch.get("op") not in OPERATIONS:
    raise ValueError(f"{_FLAG} branch {index} must be an object with op in "
                     f"{list(OPERATIONS)}, got {branch!r}.")
  source = int(branch.get("input", -1))
  if not -1 <= source < index:
    raise ValueError(f"{_FLAG} branch {index}: input must be -1 (the "
                     f"backbone feature) or an earlier branch, got {source}.")
  if branch["op"] == "pyramid_pooling":
    return {"op": "pyramid_pooling", "input": source,
            "grid_size": _pair(branch.get("grid_size"), "grid_size", index)}
  kernel = _pair(branch.get("kernel", 1), "kernel", index)
  if kernel[0] != kernel[1]:
    raise ValueError(f"{_FLAG} branch {index}: only square kernels, got "
                     f"{branch['kernel']!r}.")
  return {"op": "conv", "input": source, "kernel": kernel[0],
          "rate": _pair(branch.get("rate", 1), "rate", index)}


def validate_config(branches) -> List[Dict[str, Any]]:
  """Checks and normalises an official-format branch list."""
  if not isinstance(branches, (list, tuple)) or not branches:
    raise ValueError(f"{_FLAG} must hold a non-empty JSON list of branches, "
                     f"got {branches!r}.")
  return [_validate_branch(b, i) for i, b in enumerate(branches)]


@keras.saving.register_keras_serializable(package="deeplab")
class DensePredictionCell(keras.layers.Layer):
  """The dense prediction cell: the head in place of ASPP.

  Args:
    config: Branch list (official JSON form, see the module docstring).
    filters: Channels of every branch (official `reduction_size`, 256).
    concat_channels: Channels of the concat projection (256).
    conv_rate_multiplier: Multiplies the separable convs' rates (official:
      16 // output_stride).
    dropout_rate: Dropout on the concatenated branches, before the
      projection (official keep_prob 0.9).
    pool_crop_size: (height, width) crop that sizes the pyramid-pooling
      windows (official `image_pooling_crop_size`, else `crop_size`);
      needed only by `pyramid_pooling` branches.
    output_stride: Stride of the input feature (sizes those windows).
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon (official 1e-5).
    weight_decay: Slim-convention L2 weight decay (not on depthwise
      kernels, as official `split_separable_conv2d`).
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.

  Example:
    >>> features = keras.Input((33, 33, 2048))
    >>> dpc = DensePredictionCell(
    ...     load_config("dense_prediction_cell_branch5_top1_cityscapes"),
    ...     name="dense_prediction_cell")
    >>> dpc(features).shape
    (None, 33, 33, 256)
  """

  def __init__(self,
               config: Sequence[Dict[str, Any]],
               filters: int = 256,
               concat_channels: int = 256,
               conv_rate_multiplier: int = 1,
               dropout_rate: float = 0.1,
               pool_crop_size: Optional[Sequence[int]] = None,
               output_stride: int = 16,
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = deeplab_layers.HEAD_BATCH_NORM_EPSILON,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               **kwargs):
    kwargs.pop("activation", None)  # Official DPC: ReLU whatever is asked.
    super().__init__(**kwargs)
    if int(conv_rate_multiplier) < 1:
      raise ValueError("conv_rate_multiplier cannot be < 1, got "
                       f"{conv_rate_multiplier}.")
    self._config_dict = {
        "config": validate_config(list(config)),
        "filters": int(filters),
        "concat_channels": int(concat_channels),
        "conv_rate_multiplier": int(conv_rate_multiplier),
        "dropout_rate": float(dropout_rate),
        "pool_crop_size": ([int(c) for c in pool_crop_size]
                           if pool_crop_size else None),
        "output_stride": int(output_stride),
        "batch_norm_momentum": batch_norm_momentum,
        "batch_norm_epsilon": batch_norm_epsilon,
        "weight_decay": weight_decay,
        "sync_batch_norm": bool(sync_batch_norm),
    }
    self.branch_config = self._config_dict["config"]
    self.filters = self._config_dict["filters"]
    self.concat_channels = self._config_dict["concat_channels"]
    # === Layers === (each its own attribute: tf.train.Checkpoint does not
    # track Keras layers held in a list)
    for i, branch in enumerate(self.branch_config):
      setattr(self, f"branch{i}", self._make_branch(i, branch))
    self.dropout = keras.layers.Dropout(self._config_dict["dropout_rate"],
                                        name="concat_projection_dropout")
    self.projection = deeplab_layers.ConvBNReLU(
        self.concat_channels, 1, name="concat_projection",
        **self._layer_kwargs())
    self.resize = deeplab_layers.ResizeBilinear(True, name="pooling_resize")

  def _layer_kwargs(self):
    c = self._config_dict
    return dict(batch_norm_momentum=c["batch_norm_momentum"],
                batch_norm_epsilon=c["batch_norm_epsilon"],
                sync_batch_norm=c["sync_batch_norm"],
                weight_decay=c["weight_decay"], activation="relu")

  def _make_branch(self, index: int, branch: Dict[str, Any]):
    name = f"branch{index}"
    if branch["op"] == "conv" and branch["kernel"] != 1:
      rates = [r * self._config_dict["conv_rate_multiplier"]
               for r in branch["rate"]]
      return deeplab_layers.SplitSeparableConv2D(
          self.filters, rates, kernel_size=branch["kernel"], name=name,
          **self._layer_kwargs())
    if branch["op"] == "pyramid_pooling" and not self._config_dict[
        "pool_crop_size"]:
      raise ValueError(f"{_FLAG} branch {index}: pyramid_pooling needs the "
                       "crop size that sets its window "
                       "(--image_pooling_crop_size).")
    return deeplab_layers.ConvBNReLU(self.filters, 1, name=name,
                                     **self._layer_kwargs())

  def pyramid_pool_size(self, branch: Dict[str, Any]) -> List[int]:
    """Official `_get_pyramid_pooling_arguments` window, in feature pixels."""
    stride = self._config_dict["output_stride"]
    return [deeplab_layers.scale_dimension(c, 1.0 / (stride * g)) for c, g in
            zip(self._config_dict["pool_crop_size"], branch["grid_size"])]

  def build(self, input_shape):
    input_shape = tuple(input_shape)
    for i, branch in enumerate(self.branch_config):
      channels = (input_shape[-1] if branch["input"] < 0 else self.filters)
      getattr(self, f"branch{i}").build(input_shape[:-1] + (channels,))
    self.projection.build(input_shape[:-1] + (
        self.filters * len(self.branch_config),))
    self.built = True

  def call(self, inputs, training=None):
    outputs = []
    for i, branch in enumerate(self.branch_config):
      x = inputs if branch["input"] < 0 else outputs[branch["input"]]
      layer = getattr(self, f"branch{i}")
      if branch["op"] == "pyramid_pooling":
        pooled = ops.average_pool(x, self.pyramid_pool_size(branch), 1,
                                  padding="valid")
        x = self.resize([layer(pooled, training=training), inputs])
      else:
        x = layer(x, training=training)
      outputs.append(x)
    x = ops.concatenate(outputs, axis=-1)
    x = self.dropout(x, training=training)
    return self.projection(x, training=training)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.concat_channels,)

  def get_config(self):
    config = super().get_config()
    config.update(self._config_dict)
    return config
