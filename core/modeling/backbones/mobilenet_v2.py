"""MobileNetV2 backbone as official DeepLab builds it, in Keras layers.

Follows `nets/mobilenet/mobilenet_v2.py` (V2_DEF) and `mobilenet.py`
(`mobilenet_base`) of tensorflow/models, which official DeepLab's
`feature_extractor._mobilenet_v2` calls up to `layer_18`:

* The network stops after the last inverted-residual block (320 channels);
  the final 1x1 conv to 1280 channels is not built.
* `output_stride`: once the running stride reaches it, later strides become
  1 and the atrous rate of the following depthwise convs is multiplied by
  the skipped stride (the block whose stride was dropped keeps the previous
  rate, as in `mobilenet_base`).
* `depth_multiplier`: channel counts are `_make_divisible(c * dm, d, m)` with
  `d = m = 8` at `dm == 1` and `d = m = 1` otherwise (feature_extractor's
  `divisible_by` and `min_depth`); expansion sizes stay
  `_make_divisible(6 * c_in, 8)` (`expand_input_by_factor(6)`), and block 0
  has no expansion.
* Every conv pads 'SAME', so a stride-2 conv maps n to ceil(n / 2)
  (513 -> 257 -> 129 -> 65 -> 33).
* Convs are initialised with a truncated normal of stddev 0.09 and
  weight-decayed (slim convention); depthwise kernels are not decayed
  (`training_scope` sets no regularizer on `separable_conv2d`).

Layer names are those of `keras.applications.MobileNetV2` (`Conv1`,
`bn_Conv1`, `expanded_conv_depthwise`, `block_1_expand`, ...,
`block_16_project_BN`), so its ImageNet weight files load by name:
`model.load_weights(path_to_no_top_h5, by_name=True, skip_mismatch=True)`.
Its `Conv_1`/`Conv_1_bn` (the 1280 conv) have no counterpart here and its
`block_*_pad` layers are not needed ('SAME' padding does the same thing on
fixed-size inputs).
"""

from typing import Dict, Optional

import keras

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils

# (expansion factor, output channels, stride) of blocks 0..16 (V2_DEF).
_BLOCKS = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)
_FIRST_CONV_FILTERS = 32
_KERNEL_INITIALIZER_STDDEV = 0.09

# Official name of the last endpoint built: block 16 is `layer_18`.
FINAL_ENDPOINT = "layer_18"


def make_divisible(value: float, divisor: int, min_value=None) -> int:
  """Rounds `value` to a multiple of `divisor`, never 10% below it.

  This is `_make_divisible` of slim's mobilenet (and of Keras Applications).
  """
  if min_value is None:
    min_value = divisor
  new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if new_value < 0.9 * value:
    new_value += divisor
  return new_value


def scaled_depth(channels: int, depth_multiplier: float) -> int:
  """Output channels of a layer under DeepLab's depth-multiplier rounding.

  Official DeepLab uses `divisible_by = min_depth = 8` at depth multiplier
  1.0 and `1` otherwise, so at 0.5 the 24-channel stage gets 12 channels
  (Keras Applications, which always rounds to 8, would give 16).
  """
  divisor = 8 if depth_multiplier == 1.0 else 1
  return make_divisible(channels * depth_multiplier, divisor, divisor)


def endpoint_names() -> Dict[str, str]:
  """Documents the endpoints that `build_mobilenet_v2` returns.

  Returns:
    A map from endpoint name to a description. `layer_i` follows official
    DeepLab's one-based numbering: `layer_1` is the first conv and
    `layer_{b+2}` is inverted-residual block `b` (Keras `block_b`).
  """
  names = {
      "layer_1": "Conv1_relu: first 3x3 conv (stride 2).",
      "final": "Alias of layer_18 (block_16 output, 320 * dm channels), the "
               "feature ASPP consumes (stride output_stride).",
  }
  for block_id in range(len(_BLOCKS)):
    prefix = _keras_prefix(block_id)
    layer = f"layer_{block_id + 2}"
    names[layer] = f"Output of {prefix[:-1]} (after the residual add)."
    if block_id:
      names[f"{layer}/expansion_output"] = f"{prefix}expand_relu."
    names[f"{layer}/depthwise_output"] = f"{prefix}depthwise_relu."
  return names


def _keras_prefix(block_id: int) -> str:
  return f"block_{block_id}_" if block_id else "expanded_conv_"


def build_mobilenet_v2(inputs: keras.KerasTensor,
                       output_stride: int = 16,
                       depth_multiplier: float = 1.0,
                       norm: Optional[deeplab_layers.NormActivation] = None,
                       weight_decay: float = 4e-5,
                       quant_friendly: bool = False,
                       kernel_initializer=None
                       ) -> Dict[str, keras.KerasTensor]:
  """Adds the DeepLab MobileNetV2 backbone on top of `inputs`.

  The layers are added to the caller's functional graph (not wrapped in a
  sub-model), so the whole DeepLab model keeps Keras Applications' layer
  names at its top level and `load_weights(..., by_name=True)` works on it.

  Args:
    inputs: Preprocessed images (range [-1, 1]), [batch, height, width, 3].
    output_stride: 8, 16 or 32: ratio of input to final-feature resolution.
    depth_multiplier: Width multiplier (official rounding, see module doc).
    norm: BatchNorm options (default: official `NormActivation()`;
      the activation stays the backbone's own).
    weight_decay: Slim-convention L2 weight decay on conv kernels.
    quant_friendly: Quantization-friendly MobileNet (Sheng et al. 2018):
      depthwise convs get a bias and no BN or activation after them, and
      ReLU replaces ReLU6. ImageNet weights then load only partially.
    kernel_initializer: Initializer of the conv kernels (a Keras
      initializer or its name; `variance_scaling` learns faster from scratch,
      see docs/benchmarks.md); None keeps the official truncated normal
      with stddev 0.09.

  Returns:
    Endpoints by official name (see `endpoint_names()`), e.g.
    `layer_4/depthwise_output` (Keras `block_2_depthwise_relu`: 144
    channels at depth multiplier 1, stride 4; the decoder's low-level
    feature at decoder_output_stride 4), `layer_7/depthwise_output` (stride 8),
    `layer_14/depthwise_output` (stride 16 at output_stride >= 16), and
    `final` (block_16_project_BN, stride output_stride).

  Raises:
    ValueError: on an output_stride other than 8, 16 or 32, or a
      non-positive depth_multiplier.
  """
  norm = norm or deeplab_layers.NormActivation()
  if output_stride not in (8, 16, 32):
    raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}.")
  if depth_multiplier <= 0:
    raise ValueError(
        f"depth_multiplier must be positive, got {depth_multiplier}.")

  new_initializer = backbone_utils.initializer_factory(
      kernel_initializer,
      keras.initializers.TruncatedNormal(stddev=_KERNEL_INITIALIZER_STDDEV))

  def conv(filters, name, strides=1):
    return keras.layers.Conv2D(
        filters, 1 if strides == 1 else 3, strides=strides, padding="same",
        use_bias=False,
        kernel_initializer=new_initializer(),
        kernel_regularizer=deeplab_layers.l2_regularizer(weight_decay),
        name=name)

  def depthwise(strides, rate, name):
    return keras.layers.DepthwiseConv2D(
        3, strides=strides, dilation_rate=rate, padding="same",
        use_bias=quant_friendly,
        depthwise_initializer=new_initializer(),
        name=name)

  def bn(name):
    return norm.batch_norm(name)

  def relu6(name):
    return keras.layers.ReLU(None if quant_friendly else 6.0, name=name)

  endpoints = {}
  x = conv(scaled_depth(_FIRST_CONV_FILTERS, depth_multiplier), "Conv1",
           strides=2)(inputs)
  x = bn("bn_Conv1")(x)
  x = relu6("Conv1_relu")(x)
  endpoints["layer_1"] = x

  # mobilenet_base: past output_stride, drop the stride and dilate the
  # following layers instead; the block whose stride is dropped keeps the
  # previous rate (the bookkeeping of slim's stack_blocks_dense).
  tracker = backbone_utils.OutputStrideTracker(output_stride, current_stride=2)
  for block_id, (expansion, channels, stride) in enumerate(_BLOCKS):
    layer_stride, layer_rate = tracker.next_unit(stride)

    prefix = _keras_prefix(block_id)
    endpoint = f"layer_{block_id + 2}"
    in_channels = x.shape[-1]
    out_channels = scaled_depth(channels, depth_multiplier)
    block_input = x
    if expansion > 1:
      # expand_input_by_factor(6): rounded to 8 whatever the multiplier.
      inner = make_divisible(in_channels * expansion, 8)
      x = conv(inner, f"{prefix}expand")(x)
      x = bn(f"{prefix}expand_BN")(x)
      x = relu6(f"{prefix}expand_relu")(x)
      endpoints[f"{endpoint}/expansion_output"] = x
    x = depthwise(layer_stride, layer_rate, f"{prefix}depthwise")(x)
    if not quant_friendly:
      x = bn(f"{prefix}depthwise_BN")(x)
      x = relu6(f"{prefix}depthwise_relu")(x)
    endpoints[f"{endpoint}/depthwise_output"] = x
    x = conv(out_channels, f"{prefix}project")(x)
    x = bn(f"{prefix}project_BN")(x)
    if layer_stride == 1 and in_channels == out_channels:
      x = keras.layers.Add(name=f"{prefix}add")([block_input, x])
    endpoints[endpoint] = x

  endpoints["final"] = endpoints[FINAL_ENDPOINT]
  return endpoints
