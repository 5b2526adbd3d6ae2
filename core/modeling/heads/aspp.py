"""Atrous Spatial Pyramid Pooling (DeepLabv3, Sec. 3.3; v3+, Sec. 3.1).

Reproduces the ASPP of official DeepLab's `model.extract_features`
(`aspp_with_batch_norm=True`): parallel branches on the backbone feature,
concatenated in the official order (image pooling, 1x1, atrous rates...),
then a 1x1 projection and dropout. With no atrous rates it is "ASPP lite"
(image pooling and 1x1 only), which is what mobilenet_v2 uses.

Options of the official MobileNetV3 segmentation head: image pooling over a
fixed window (`--image_pooling_crop_size`, `--image_pooling_stride`), no
concat projection, and the image-pooling branch as a squeeze-and-excitation
gate (sigmoid or hard sigmoid) instead of a concatenated branch. Users may
also describe the branches in JSON (`parse_branches`).
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import keras
from keras import ops

from deeplab.core.modeling import layers as deeplab_layers

BRANCH_TYPES = ("pooling", "conv", "separable")


def parse_branches(value: str) -> List[Dict[str, Any]]:
  """Parses a JSON ASPP description (inline JSON or a .json file path).

  The description is a list of branches, concatenated in order, e.g.
  `[{"type": "pooling"}, {"type": "conv", "kernel_size": 1},
  {"type": "separable", "rate": 6}, {"type": "conv", "kernel_size": 3,
  "rate": 12, "filters": 128}]`. Keys: `type` (`pooling`: global average
  pool + 1x1 conv, resized back; `conv`: conv + BN + ReLU; `separable`:
  DeepLab split separable conv), `kernel_size` (default 1 for conv, 3 for
  separable), `rate` (default 1), `filters` (default: the ASPP's), `name`.

  Raises:
    ValueError: naming the problem, on bad JSON or an invalid branch.
  """
  text = value
  if os.path.exists(value):
    with open(value, encoding="utf-8") as f:
      text = f.read()
  try:
    branches = json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"--aspp_branches is not valid JSON ({error}): "
                     f"{value!r}") from None
  return validate_branches(branches)


def validate_branches(branches) -> List[Dict[str, Any]]:
  """Checks and normalises a branch list (see `parse_branches`)."""
  if not isinstance(branches, list) or not branches:
    raise ValueError("--aspp_branches must be a non-empty JSON list of "
                     f"branches, got {branches!r}.")
  result = []
  for i, branch in enumerate(branches):
    if not isinstance(branch, dict) or branch.get("type") not in BRANCH_TYPES:
      raise ValueError(f"--aspp_branches[{i}] must be an object with type in "
                       f"{list(BRANCH_TYPES)}, got {branch!r}.")
    unknown = set(branch) - {"type", "kernel_size", "rate", "filters", "name"}
    if unknown:
      raise ValueError(f"--aspp_branches[{i}]: unknown keys {sorted(unknown)}.")
    kind = branch["type"]
    normalised = {
        "type": kind,
        "kernel_size": int(branch.get(
            "kernel_size", 3 if kind == "separable" else 1)),
        "rate": int(branch.get("rate", 1)),
        "name": str(branch.get("name", f"branch{i}")),
    }
    if "filters" in branch:
      normalised["filters"] = int(branch["filters"])
    if kind == "pooling" and normalised["kernel_size"] != 1:
      raise ValueError(f"--aspp_branches[{i}]: a pooling branch takes a 1x1 "
                       "conv.")
    if min(normalised["kernel_size"], normalised["rate"]) < 1:
      raise ValueError(f"--aspp_branches[{i}]: kernel_size and rate must be "
                       "positive.")
    result.append(normalised)
  if sum(b["type"] == "pooling" for b in result) > 1:
    raise ValueError("--aspp_branches: at most one pooling branch.")
  return result


@keras.saving.register_keras_serializable(package="deeplab")
class ASPP(keras.layers.Layer):
  """Atrous Spatial Pyramid Pooling.

  Branches (each Conv + BN + ReLU with `filters` channels), in the official
  concat order so that official checkpoints map onto the projection:

  1. `image_pooling` (optional): average pool (global, or over `pool_size`
     with `pool_stride`, 'VALID'), 1x1 conv, then a bilinear resize back to
     the feature's (dynamic) size.
  2. `aspp0`: 1x1 conv.
  3. `aspp1..3`: 3x3 atrous convs at `atrous_rates`, either DeepLab's split
     separable conv (depthwise + BN + ReLU, pointwise + BN + ReLU) or a
     regular conv.

  Then `concat_projection` (1x1 conv + BN + ReLU) and dropout (official
  keep_prob 0.9). With `branches`, the branches are the listed ones instead
  (see `parse_branches`).

  Args:
    filters: Channels of every branch and of the projection (256).
    atrous_rates: Rates of the atrous branches, e.g. (6, 12, 18) at output
      stride 16; empty for ASPP lite.
    use_separable_conv: Separable (official default) or regular atrous
      convs.
    image_pooling: Add the image-pooling branch.
    dropout_rate: Dropout after the projection.
    batch_norm_momentum: BatchNorm moving-average momentum (slim decay).
    batch_norm_epsilon: BatchNorm epsilon (1e-5: official model.py builds
      every head batch norm so, whatever the backbone uses).
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
    align_corners: Resize mode of the image-pooling branch.
    pool_size: Image-pooling window in feature pixels, (height, width);
      None pools globally. Official `image_pooling_crop_size` gives
      `(crop - 1) // output_stride + 1`.
    pool_stride: Stride of that window (official `image_pooling_stride`).
    concat_projection: Project the concatenation with a 1x1 conv (and
      dropout); without it the output has all branches' channels.
    squeeze_and_excitation: Use the image-pooling branch as a gate: its
      1x1 conv (with bias, no BN) goes through a sigmoid and multiplies the
      output, instead of being concatenated (MobileNetV3 head).
    se_uses_qsigmoid: Hard sigmoid `relu6(x + 3) / 6` as that gate.
    activation: `relu` or `relu6` (official `use_bounded_activation`).
    quant_friendly: Separable branches without BN after the depthwise conv.
    branches: Optional branch list (see `parse_branches`); replaces
      `atrous_rates`, `use_separable_conv` and `image_pooling`.

  Example:
    >>> features = keras.Input((None, None, 320))
    >>> out = ASPP(atrous_rates=(6, 12, 18), name="aspp")(features)
    >>> out.shape
    (None, None, None, 256)
  """

  def __init__(self,
               filters: int = 256,
               atrous_rates: Sequence[int] = (),
               use_separable_conv: bool = True,
               image_pooling: bool = True,
               dropout_rate: float = 0.1,
               batch_norm_momentum: float = 0.9997,
               batch_norm_epsilon: float = deeplab_layers.HEAD_BATCH_NORM_EPSILON,
               weight_decay: float = 4e-5,
               sync_batch_norm: bool = False,
               align_corners: bool = True,
               pool_size: Optional[Sequence[int]] = None,
               pool_stride: Sequence[int] = (1, 1),
               concat_projection: bool = True,
               squeeze_and_excitation: bool = False,
               se_uses_qsigmoid: bool = False,
               activation: str = "relu",
               quant_friendly: bool = False,
               branches: Optional[Sequence[Dict[str, Any]]] = None,
               **kwargs):
    super().__init__(**kwargs)
    # The constructor arguments, normalised, kept once: get_config returns
    # them (Model Garden aspp.py style) and the attributes below read them.
    self._config_dict = {
        "filters": int(filters),
        "atrous_rates": [int(r) for r in atrous_rates or ()],
        "use_separable_conv": bool(use_separable_conv),
        "image_pooling": bool(image_pooling),
        "dropout_rate": float(dropout_rate),
        "batch_norm_momentum": batch_norm_momentum,
        "batch_norm_epsilon": batch_norm_epsilon,
        "weight_decay": weight_decay,
        "sync_batch_norm": bool(sync_batch_norm),
        "align_corners": bool(align_corners),
        "pool_size": [int(p) for p in pool_size] if pool_size else None,
        "pool_stride": [int(p) for p in pool_stride],
        "concat_projection": bool(concat_projection),
        "squeeze_and_excitation": bool(squeeze_and_excitation),
        "se_uses_qsigmoid": bool(se_uses_qsigmoid),
        "activation": activation,
        "quant_friendly": bool(quant_friendly),
        "branches": validate_branches(list(branches)) if branches else None,
    }
    self.norm = deeplab_layers.NormActivation(
        batch_norm_momentum, batch_norm_epsilon, sync_batch_norm, activation)
    self.filters = self._config_dict["filters"]
    self.atrous_rates = tuple(self._config_dict["atrous_rates"])
    self.pool_size = (tuple(self._config_dict["pool_size"])
                      if pool_size else None)
    self.pool_stride = tuple(self._config_dict["pool_stride"])
    self.concat_projection = self._config_dict["concat_projection"]
    self.squeeze_and_excitation = self._config_dict["squeeze_and_excitation"]
    self.branches = self._config_dict["branches"]

    self._branch_specs = self._make_branch_specs()
    self.image_pooling = any(
        spec["type"] == "pooling" for _, spec in self._branch_specs)

    # === Layers ===
    # Each branch is its own attribute: tf.train.Checkpoint does not track
    # Keras layers held in a list attribute, so their weights would be lost.
    for attribute, spec in self._branch_specs:
      setattr(self, attribute, self._make_branch(spec))
    self._check_squeeze_and_excitation()
    if concat_projection:
      self.projection = deeplab_layers.ConvBNReLU(
          self.filters, 1, name="concat_projection", **self._layer_kwargs())
      self.dropout = keras.layers.Dropout(dropout_rate, name="dropout")

  def _layer_kwargs(self):
    return dict(weight_decay=self._config_dict["weight_decay"],
                **self.norm.layer_kwargs())

  def _make_branch_specs(self):
    """(attribute, spec) of each branch, in concat order."""
    if self.branches is not None:
      return [("image_pooling_conv" if b["type"] == "pooling"
               else f"branch{i}", b) for i, b in enumerate(self.branches)]
    separable = self._config_dict["use_separable_conv"]
    # Attribute names of the original layout (checkpoint object paths).
    specs = []
    if self._config_dict["image_pooling"]:
      specs.append(("image_pooling_conv",
                    {"type": "pooling", "kernel_size": 1, "rate": 1,
                     "name": "image_pooling"}))
    specs.append(("conv_1x1", {"type": "conv", "kernel_size": 1, "rate": 1,
                               "name": "aspp0"}))
    for i, rate in enumerate(self.atrous_rates, 1):
      specs.append((f"atrous_conv{i}",
                    {"type": "separable" if separable else "conv",
                     "kernel_size": 3, "rate": rate, "name": f"aspp{i}"}))
    return specs

  def _make_branch(self, spec):
    """The layer of one branch spec (official `extract_features` scopes)."""
    filters = spec.get("filters", self.filters)
    common = self._layer_kwargs()
    if spec["type"] == "pooling":
      self.image_pooling_resize = deeplab_layers.ResizeBilinear(
          self._config_dict["align_corners"], name="image_pooling_resize")
      if not self.squeeze_and_excitation:
        return deeplab_layers.ConvBNReLU(filters, 1, name=spec["name"],
                                         **common)
      gate = (deeplab_layers.hard_sigmoid
              if self._config_dict["se_uses_qsigmoid"] else "sigmoid")
      return keras.layers.Conv2D(
          filters, 1, use_bias=True, activation=gate,
          kernel_regularizer=deeplab_layers.l2_regularizer(
              self._config_dict["weight_decay"]),
          name=spec["name"])
    if spec["type"] == "separable":
      return deeplab_layers.SplitSeparableConv2D(
          filters, spec["rate"], kernel_size=spec["kernel_size"],
          quant_friendly=self._config_dict["quant_friendly"],
          name=spec["name"], **common)
    return deeplab_layers.ConvBNReLU(
        filters, spec["kernel_size"], dilation_rate=spec["rate"],
        name=spec["name"], **common)

  def _check_squeeze_and_excitation(self):
    if not self.squeeze_and_excitation:
      return
    if not self.image_pooling:
      raise ValueError("ASPP squeeze_and_excitation needs the image-pooling "
                       "branch.")
    if (not self.concat_projection and
        self._concat_channels() != self._se_filters()):
      raise ValueError(
          "ASPP squeeze_and_excitation without concat projection gates the "
          "concatenated branches: they must have as many channels as the "
          "image-pooling conv.")

  def _se_filters(self):
    return self.image_pooling_conv.filters

  def _concat_channels(self):
    total = 0
    for _, spec in self._branch_specs:
      if spec["type"] == "pooling" and self.squeeze_and_excitation:
        continue
      total += spec.get("filters", self.filters)
    return total

  @property
  def num_branches(self) -> int:
    """Number of parallel branches (2 for ASPP lite, 5 for full ASPP)."""
    return len(self._branch_specs)

  @property
  def atrous_convs(self):
    """The branches other than image pooling and the first 1x1 conv, in
    order (the atrous branches of the default layout)."""
    return [getattr(self, attribute) for attribute, _ in self._branch_specs
            if attribute.startswith(("atrous_conv", "branch"))]

  def _branches(self):
    return [(getattr(self, attribute), spec)
            for attribute, spec in self._branch_specs]

  def build(self, input_shape):
    input_shape = tuple(input_shape)
    for branch, spec in self._branches():
      if spec["type"] == "pooling":
        branch.build(input_shape[:1] + (1, 1, input_shape[-1]))
      else:
        branch.build(input_shape)
    if self.concat_projection:
      self.projection.build(input_shape[:-1] + (self._concat_channels(),))
    self.built = True

  def _pool(self, inputs):
    if self.pool_size is None:
      return ops.mean(inputs, axis=(1, 2), keepdims=True)
    return ops.average_pool(inputs, self.pool_size, self.pool_stride,
                            padding="valid")

  def call(self, inputs, training=None):
    outputs, gate = [], None
    for branch, spec in self._branches():
      if spec["type"] == "pooling":
        pooled = self._pool(inputs)
        if self.squeeze_and_excitation:
          gate = self.image_pooling_resize([branch(pooled), inputs])
          continue
        pooled = branch(pooled, training=training)
        outputs.append(self.image_pooling_resize([pooled, inputs]))
      else:
        outputs.append(branch(inputs, training=training))
    x = ops.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
    if self.concat_projection:
      x = self.projection(x, training=training)
      x = self.dropout(x, training=training)
    if gate is not None:
      x = x * gate
    return x

  def compute_output_shape(self, input_shape):
    channels = (self.filters if self.concat_projection
                else self._concat_channels())
    return tuple(input_shape[:-1]) + (channels,)

  def get_config(self):
    config = super().get_config()
    config.update(self._config_dict)
    config["image_pooling"] = self.image_pooling
    return config
