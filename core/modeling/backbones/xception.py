"""Aligned Xception (xception_41/65/71) as official DeepLab builds it.

Follows `research/deeplab/core/xception.py` of tensorflow/models (Chen et
al., ECCV 2018, Sec. 3.2 and Fig. 4): the "aligned" Xception of Deformable
ConvNets with every max pool replaced by a strided separable conv, BN and
ReLU after each 3x3 depthwise conv, and deeper middle flows.

* Root: `entry_flow/conv1_1` (3x3, 32, stride 2, explicit padding) and
  `entry_flow/conv1_2` (3x3, 64), each conv + BN + ReLU.
* Xception module: three split separable convs (depthwise + BN, pointwise +
  BN), each preceded by a ReLU; the third one carries the stride. The skip
  is a strided 1x1 conv + BN (`conv`), the input (`sum`), or nothing
  (`none`). The last exit-flow module instead puts BN + ReLU after every
  depthwise and pointwise conv (`activation_fn_in_separable_conv`) and
  takes `multi_grid` as its unit rates.
* Strided separable convs pad explicitly (`fixed_padding`) and run 'VALID'.
* Weights: truncated normal, stddev 0.09; weight decay on the pointwise
  and regular kernels, not on depthwise kernels (official default
  `regularize_depthwise=False`).

Layer names are the official TF1 scopes with `/` replaced by `.`, e.g.
`xception_65.entry_flow.block1.unit_1.xception_module.separable_conv1_depthwise`
and its `....separable_conv1_depthwise.BatchNorm`, so official checkpoint
variables (`.../depthwise_weights`, `.../weights`, `.../BatchNorm/gamma`)
map onto them one to one (see `deeplab.core.modeling.import_weights`).
"""

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import keras

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils

_STDDEV = 0.09


@dataclasses.dataclass(frozen=True)
class XceptionBlock:
  """One `xception_block`: `num_units` identical Xception modules."""
  scope: str
  depth_list: Tuple[int, int, int]
  skip_connection_type: str
  num_units: int
  stride: int
  activation_fn_in_separable_conv: bool = False
  use_multi_grid: bool = False


def _entry(scope, depth, stride):
  return XceptionBlock(f"entry_flow/{scope}", (depth,) * 3, "conv", 1, stride)


def _exit_blocks():
  return (XceptionBlock("exit_flow/block1", (728, 1024, 1024), "conv", 1, 2),
          XceptionBlock("exit_flow/block2", (1536, 1536, 2048), "none", 1, 1,
                        activation_fn_in_separable_conv=True,
                        use_multi_grid=True))


def _middle(num_units):
  return XceptionBlock("middle_flow/block1", (728,) * 3, "sum", num_units, 1)


# Official `xception_41`, `xception_65`, `xception_71` block lists.
BLOCKS = {
    "xception_41": (_entry("block1", 128, 2), _entry("block2", 256, 2),
                    _entry("block3", 728, 2), _middle(8)) + _exit_blocks(),
    "xception_65": (_entry("block1", 128, 2), _entry("block2", 256, 2),
                    _entry("block3", 728, 2), _middle(16)) + _exit_blocks(),
    "xception_71": (_entry("block1", 128, 2), _entry("block2", 256, 1),
                    _entry("block3", 256, 2), _entry("block4", 728, 1),
                    _entry("block5", 728, 2), _middle(16)) + _exit_blocks(),
}

# Official feature_extractor DECODER_END_POINTS (low-level features).
_PW2 = "unit_1/xception_module/separable_conv2_pointwise"
DECODER_ENDPOINTS = {
    "xception_41": {4: f"entry_flow/block2/{_PW2}",
                    8: f"entry_flow/block3/{_PW2}",
                    16: f"exit_flow/block1/{_PW2}"},
    "xception_65": {4: f"entry_flow/block2/{_PW2}",
                    8: f"entry_flow/block3/{_PW2}",
                    16: f"exit_flow/block1/{_PW2}"},
    "xception_71": {4: f"entry_flow/block3/{_PW2}",
                    8: f"entry_flow/block5/{_PW2}",
                    16: f"exit_flow/block1/{_PW2}"},
}


def build_xception(inputs: keras.KerasTensor,
                   name: str = "xception_65",
                   output_stride: int = 16,
                   multi_grid: Sequence[int] = (1, 1, 1),
                   norm: Optional[deeplab_layers.NormActivation] = None,
                   weight_decay: float = 4e-5,
                   use_bounded_activation: bool = False,
                   kernel_initializer=None
                   ) -> Dict[str, keras.KerasTensor]:
  """Adds an aligned Xception backbone on top of `inputs`.

  Args:
    inputs: Preprocessed images (range [-1, 1]), [batch, height, width, 3].
    name: `xception_41`, `xception_65` or `xception_71`.
    output_stride: 8, 16 or 32.
    multi_grid: Unit rates of the three separable convs of the last module.
    norm: BatchNorm options (default: official `NormActivation()`;
      the activation stays the backbone's own).
    weight_decay: Slim-convention L2 weight decay.
    use_bounded_activation: Official quantization option: ReLU6 instead of
      ReLU, and linear outputs (separable convs without activation, both
      operands of every residual add) clipped to [-6, 6].
    kernel_initializer: Initializer of the conv kernels (a Keras
      initializer or its name; `variance_scaling` learns faster from scratch,
      see docs/benchmarks.md); None keeps the official truncated normal
      with stddev 0.09.

  Returns:
    Endpoints by official name (without the network prefix): every
    module's output (`entry_flow/block1`, ..., `exit_flow/block2`), every
    separable conv's pointwise output
    (`.../xception_module/separable_conv2_pointwise`, the decoder's
    low-level features; BN output, before ReLU), and `final`
    (`exit_flow/block2`, 2048 channels at stride output_stride).

  Raises:
    ValueError: on an unknown name, a bad output_stride or a multi_grid
      that is not three rates.
  """
  norm = norm or deeplab_layers.NormActivation()
  if name not in BLOCKS:
    raise ValueError(f"Unknown Xception {name!r}; known: {sorted(BLOCKS)}.")
  backbone_utils.check_output_stride(output_stride)
  multi_grid = tuple(int(r) for r in multi_grid)
  if len(multi_grid) != 3:
    raise ValueError(f"multi_grid takes 3 rates for Xception, got "
                     f"{list(multi_grid)}.")

  new_initializer = backbone_utils.initializer_factory(
      kernel_initializer, keras.initializers.TruncatedNormal(stddev=_STDDEV))
  regularizer = deeplab_layers.l2_regularizer

  def lname(scope):
    return backbone_utils.keras_name(f"{name}/{scope}")

  def bn(scope):
    return norm.batch_norm(lname(f"{scope}/BatchNorm"))

  relu_max = 6.0 if use_bounded_activation else None

  def clip(x, scope):
    if not use_bounded_activation:
      return x
    return keras.layers.Activation(deeplab_layers.clip_6,
                                   name=lname(f"{scope}/clip"))(x)

  def separable(x, filters, rate, stride, scope, activation):
    """Official `separable_conv2d_same` (split form) + BN [+ ReLU]."""
    padding = "same"
    if stride > 1:
      x = backbone_utils.fixed_padding(x, 3, rate,
                                       name=lname(f"{scope}_depthwise/pad"))
      padding = "valid"
    x = keras.layers.DepthwiseConv2D(
        3, strides=stride, dilation_rate=rate, padding=padding,
        use_bias=False, depthwise_initializer=new_initializer(),
        name=lname(f"{scope}_depthwise"))(x)
    x = bn(f"{scope}_depthwise")(x)
    if activation:
      x = keras.layers.ReLU(relu_max, name=lname(f"{scope}_depthwise/Relu"))(x)
    else:
      x = clip(x, f"{scope}_depthwise")
    x = keras.layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer=new_initializer(),
        kernel_regularizer=regularizer(weight_decay),
        name=lname(f"{scope}_pointwise"))(x)
    x = bn(f"{scope}_pointwise")(x)
    if activation:
      x = keras.layers.ReLU(relu_max, name=lname(f"{scope}_pointwise/Relu"))(x)
    else:
      x = clip(x, f"{scope}_pointwise")
    return x

  endpoints = {}
  # === Root block ===
  x = backbone_utils.conv2d_same(inputs, 32, 3, 2, 1,
                                 lname("entry_flow/conv1_1"), weight_decay,
                                 new_initializer())
  x = bn("entry_flow/conv1_1")(x)
  x = keras.layers.ReLU(relu_max, name=lname("entry_flow/conv1_1/Relu"))(x)
  x = backbone_utils.conv2d_same(x, 64, 3, 1, 1, lname("entry_flow/conv1_2"),
                                 weight_decay, new_initializer())
  x = bn("entry_flow/conv1_2")(x)
  x = keras.layers.ReLU(relu_max, name=lname("entry_flow/conv1_2/Relu"))(x)
  endpoints["entry_flow/conv1_2"] = x

  # === Entry, middle and exit flows ===
  tracker = backbone_utils.OutputStrideTracker(output_stride, current_stride=2)
  for block in BLOCKS[name]:
    for unit in range(1, block.num_units + 1):
      stride, rate = tracker.next_unit(block.stride)
      scope = f"{block.scope}/unit_{unit}/xception_module"
      unit_rates = multi_grid if block.use_multi_grid else (1, 1, 1)
      block_input = x
      residual = x
      for i, depth in enumerate(block.depth_list):
        conv_scope = f"{scope}/separable_conv{i + 1}"
        if not block.activation_fn_in_separable_conv:
          residual = keras.layers.ReLU(
              relu_max, name=lname(f"{conv_scope}/pre_relu"))(residual)
        residual = separable(residual, depth, rate * unit_rates[i],
                             stride if i == 2 else 1, conv_scope,
                             block.activation_fn_in_separable_conv)
        endpoints[f"{conv_scope}_pointwise"] = residual
      if block.skip_connection_type == "conv":
        shortcut = keras.layers.Conv2D(
            block.depth_list[-1], 1, strides=stride, use_bias=False,
            kernel_initializer=new_initializer(),
            kernel_regularizer=regularizer(weight_decay),
            name=lname(f"{scope}/shortcut"))(block_input)
        shortcut = clip(bn(f"{scope}/shortcut")(shortcut), f"{scope}/shortcut")
        x = keras.layers.Add(name=lname(f"{scope}/add"))([residual, shortcut])
      elif block.skip_connection_type == "sum":
        x = keras.layers.Add(name=lname(f"{scope}/add"))(
            [residual, clip(block_input, f"{scope}/input")])
      else:
        x = residual
      endpoints[f"{block.scope}/unit_{unit}/xception_module"] = x
    endpoints[block.scope] = x
  endpoints["final"] = x
  return endpoints
