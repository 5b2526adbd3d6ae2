"""MobileNetV3 segmentation backbones (mobilenet_v3_large_seg/small_seg).

Follows official DeepLab's `feature_extractor.mobilenet_v3_{large,small}_seg`
on slim's `nets/mobilenet/mobilenet_v3.py` (Howard et al., ICCV 2019):

* V3_LARGE / V3_SMALL specs (expansion, output channels, kernel, stride,
  squeeze-and-excitation, ReLU or hard-swish), built up to `layer_17`
  (large) or `layer_13` (small), the 1x1 conv before global pooling.
* "Seg" variants: the last block's filters are halved (large: layers 13-16
  output 80 and 480 channels with expansions 336, 480, 480; small: layers
  9-12 output 48 and 288 with expansions 144, 288, 288), as the paper's
  segmentation models.
* Expansion sizes are `_make_divisible(c_in * factor, 8)`; a block expands
  only where that exceeds its input channels; the depthwise conv (BN +
  activation) is followed by squeeze-and-excitation (1x1 convs with bias:
  ReLU, then hard sigmoid `relu6(x + 3) * 0.16667`, squeezed to
  `_make_divisible(c / 4, 8)`), then the 1x1 projection (BN, linear), and a
  residual add where stride is 1 and depth is unchanged.
* `output_stride` as `mobilenet_base`: past it, strides become 1 and later
  depthwise convs are dilated.

Layer names are the official scopes with `/` -> `.`
(`MobilenetV3.expanded_conv_3.squeeze_excite.Conv`, ...). Endpoints follow
DeepLab's one-based `layer_i` numbering (`layer_4/depthwise_output`, ...).
"""

from typing import Dict, Optional

import keras

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils
from deeplab.core.modeling.backbones import mobilenet_v2

# (expansion size or None for "factor" rule, expansion factor, out channels,
#  kernel, stride, se, activation) for spec[1:] of V3_LARGE / V3_SMALL,
# already with the seg reductions; spec[0] is a 3x3 conv of 16, stride 2.
_RE, _HS = "relu", "hard_swish"
_LARGE_SEG = (
    (1, 16, 3, 1, False, _RE), (4, 24, 3, 2, False, _RE),
    (3, 24, 3, 1, False, _RE), (3, 40, 5, 2, True, _RE),
    (3, 40, 5, 1, True, _RE), (3, 40, 5, 1, True, _RE),
    (6, 80, 3, 2, False, _HS), (2.5, 80, 3, 1, False, _HS),
    (184 / 80., 80, 3, 1, False, _HS), (184 / 80., 80, 3, 1, False, _HS),
    (6, 112, 3, 1, True, _HS), (6, 112, 3, 1, True, _HS),
    # Seg: 160 -> 80 channels; expansions 336, 480, 480.
    (336 / 112., 80, 5, 2, True, _HS), (6, 80, 5, 1, True, _HS),
    (6, 80, 5, 1, True, _HS),
)
_SMALL_SEG = (
    (1, 16, 3, 2, True, _RE), (72 / 16., 24, 3, 2, False, _RE),
    (88 / 24., 24, 3, 1, False, _RE), (4, 40, 5, 2, True, _HS),
    (6, 40, 5, 1, True, _HS), (6, 40, 5, 1, True, _HS),
    (3, 48, 5, 1, True, _HS), (3, 48, 5, 1, True, _HS),
    # Seg: 96 -> 48 channels; expansions 144, 288, 288.
    (144 / 48., 48, 5, 2, True, _HS), (6, 48, 5, 1, True, _HS),
    (6, 48, 5, 1, True, _HS),
)
# name -> (blocks, final 1x1 conv channels (halved for seg)).
SPECS = {
    "mobilenet_v3_large_seg": (_LARGE_SEG, 480),
    "mobilenet_v3_small_seg": (_SMALL_SEG, 288),
}

DECODER_ENDPOINTS = {
    "mobilenet_v3_large_seg": {4: "layer_4/depthwise_output",
                               8: "layer_7/depthwise_output",
                               16: "layer_13/depthwise_output"},
    "mobilenet_v3_small_seg": {4: "layer_2/depthwise_output",
                               8: "layer_4/depthwise_output",
                               16: "layer_9/depthwise_output"},
}

_STDDEV = 0.09


@keras.saving.register_keras_serializable(package="deeplab")
def hard_swish(x):
  """x * relu6(x + 3) / 6."""
  return x * keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


def build_mobilenet_v3(inputs: keras.KerasTensor,
                       name: str = "mobilenet_v3_large_seg",
                       output_stride: int = 32,
                       depth_multiplier: float = 1.0,
                       norm: Optional[deeplab_layers.NormActivation] = None,
                       weight_decay: float = 4e-5,
                       quant_friendly: bool = False,
                       scope: Optional[str] = "MobilenetV3",
                       kernel_initializer=None
                       ) -> Dict[str, keras.KerasTensor]:
  """Adds a MobileNetV3 segmentation backbone on top of `inputs`.

  Args:
    inputs: Images in [-1, 1].
    name: `mobilenet_v3_large_seg` or `mobilenet_v3_small_seg`.
    output_stride: 8, 16 or 32 (the official Cityscapes models use 32).
    depth_multiplier: Width multiplier (channels rounded to multiples of 8).
    norm: BatchNorm options (default: official `NormActivation(momentum=0.997)`;
      the activation stays the backbone's own).
    weight_decay: Slim-convention L2 weight decay on regular convs.
    quant_friendly: Depthwise convs get a bias and no BatchNorm (Sheng et
      al. 2018, quantization-friendly separable convs).
    scope: Official variable scope (layer-name prefix).
    kernel_initializer: Initializer of the conv kernels (a Keras
      initializer or its name; `variance_scaling` learns faster from scratch,
      see docs/benchmarks.md); None keeps the official truncated normal
      with stddev 0.09.

  Returns:
    Endpoints: `layer_1`, `layer_{i}` (block outputs),
    `layer_{i}/expansion_output`, `layer_{i}/depthwise_output` (after
    BN and activation, before SE), and `final` (the last 1x1 conv).

  Raises:
    ValueError: on an unknown name, bad output_stride or depth_multiplier.
  """
  norm = norm or deeplab_layers.NormActivation(momentum=0.997)
  if name not in SPECS:
    raise ValueError(f"Unknown MobileNetV3 {name!r}; known: {sorted(SPECS)}.")
  backbone_utils.check_output_stride(output_stride)
  if depth_multiplier <= 0:
    raise ValueError(
        f"depth_multiplier must be positive, got {depth_multiplier}.")
  blocks, final_channels = SPECS[name]
  new_initializer = backbone_utils.initializer_factory(
      kernel_initializer, keras.initializers.TruncatedNormal(stddev=_STDDEV))

  def lname(s):
    return backbone_utils.keras_name(f"{scope}/{s}")

  def depth(channels):
    return mobilenet_v2.make_divisible(channels * depth_multiplier, 8)

  def conv(x, filters, s, use_bias=False, kernel=1, strides=1):
    return keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer=new_initializer(),
        kernel_regularizer=deeplab_layers.l2_regularizer(weight_decay),
        name=lname(s))(x)

  def bn(x, s):
    return norm.batch_norm(lname(f"{s}/BatchNorm"))(x)

  def act(x, kind, s):
    fn = hard_swish if kind == _HS else keras.activations.relu
    return keras.layers.Activation(fn, name=lname(f"{s}/{kind}"))(x)

  endpoints = {}
  x = conv(inputs, depth(16), "Conv", kernel=3, strides=2)
  x = act(bn(x, "Conv"), _HS, "Conv")
  endpoints["layer_1"] = x

  tracker = backbone_utils.OutputStrideTracker(output_stride, current_stride=2)
  for index, (factor, channels, kernel, stride, se, kind) in enumerate(
      blocks, 1):
    block_stride, rate = tracker.next_unit(stride)
    s = "expanded_conv" + (f"_{index - 1}" if index > 1 else "")
    layer = f"layer_{index + 1}"
    block_input = x
    in_channels = x.shape[-1]
    inner = mobilenet_v2.make_divisible(in_channels * factor, 8)
    if inner > in_channels:
      x = act(bn(conv(x, inner, f"{s}/expand"), f"{s}/expand"), kind,
              f"{s}/expand")
      endpoints[f"{layer}/expansion_output"] = x
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=block_stride, dilation_rate=rate, padding="same",
        use_bias=quant_friendly, depthwise_initializer=new_initializer(),
        name=lname(f"{s}/depthwise"))(x)
    if not quant_friendly:
      x = bn(x, f"{s}/depthwise")
    x = act(x, kind, f"{s}/depthwise")
    endpoints[f"{layer}/depthwise_output"] = x
    if se:
      x = _squeeze_excite(x, lname(f"{s}/squeeze_excite"), new_initializer)
    x = bn(conv(x, depth(channels), f"{s}/project"), f"{s}/project")
    if block_stride == 1 and in_channels == x.shape[-1]:
      x = keras.layers.Add(name=lname(f"{s}/add"))([block_input, x])
    endpoints[layer] = x

  x = conv(x, depth(final_channels), "Conv_1")
  x = act(bn(x, "Conv_1"), _HS, "Conv_1")
  endpoints[f"layer_{len(blocks) + 2}"] = x
  endpoints["final"] = x
  return endpoints


def _squeeze_excite(x, prefix, new_initializer):
  """Slim `squeeze_excite` (squeeze_factor 4, ReLU, hard-sigmoid gate)."""
  channels = x.shape[-1]
  squeeze = mobilenet_v2.make_divisible(channels / 4, 8)
  pooled = keras.layers.GlobalAveragePooling2D(
      keepdims=True, name=f"{prefix}.pool")(x)
  s = keras.layers.Conv2D(squeeze, 1, activation="relu",
                          kernel_initializer=new_initializer(),
                          name=f"{prefix}.Conv")(pooled)
  s = keras.layers.Conv2D(channels, 1, activation=deeplab_layers.hard_sigmoid,
                          kernel_initializer=new_initializer(),
                          name=f"{prefix}.Conv_1")(s)
  return keras.layers.Multiply(name=f"{prefix}.mul")([x, s])
