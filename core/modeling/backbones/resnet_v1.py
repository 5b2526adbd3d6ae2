"""ResNet-v1 (resnet_v1_50/101 and their `_beta` variants) as official
DeepLab builds them.

Follows `research/deeplab/core/resnet_v1_beta.py` with slim's
`resnet_v1.bottleneck` and `resnet_utils.stack_blocks_dense`:

* Root: `conv1` (7x7, 64, stride 2) for resnet_v1_*, or the beta stem
  `conv1_1`/`conv1_2`/`conv1_3` (3x3 convs of 64, 64, 128; the first with
  stride 2); then `pool1`, a 3x3 max pool of stride 2 ('SAME').
* Bottleneck units (1x1, 3x3, 1x1 * 4 channels); the stride sits in the
  3x3 conv of the *last* unit of blocks 1-3 (Keras Applications strides in
  the first unit instead, see `keras_app_backbones`). The shortcut is a
  1x1 conv + BN where the depth changes, else a 1x1 subsample.
* block4 (three units of 2048) never strides; its 3x3 convs use
  `rate * multi_grid[i]`.
* Strided convs pad explicitly and run 'VALID' (`conv2d_same`).
* Weights: He (variance scaling, fan-in, factor 2) truncated normal.

Layer names are the official scopes with `/` -> `.`, e.g.
`resnet_v1_101.block3.unit_22.bottleneck_v1.conv2` and its
`....conv2.BatchNorm`; the beta variants use the plain variant's scope
(`resnet_v1_101.conv1_1`), as official checkpoints do.
"""

from typing import Dict, Optional, Sequence

import keras

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils

# (scope, base depth, units, stride) of blocks 1-3; block4 is separate.
_BLOCKS = {
    50: (("block1", 64, 3, 2), ("block2", 128, 4, 2), ("block3", 256, 6, 2)),
    101: (("block1", 64, 3, 2), ("block2", 128, 4, 2), ("block3", 256, 23, 2)),
}

VARIANTS = {
    "resnet_v1_50": (50, False),
    "resnet_v1_50_beta": (50, True),
    "resnet_v1_101": (101, False),
    "resnet_v1_101_beta": (101, True),
}

# Official feature_extractor DECODER_END_POINTS (conv3 of the unit before
# the strided one: the BN output before the residual add).
DECODER_ENDPOINTS = {
    50: {4: "block1/unit_2/bottleneck_v1/conv3",
         8: "block2/unit_3/bottleneck_v1/conv3",
         16: "block3/unit_5/bottleneck_v1/conv3"},
    101: {4: "block1/unit_2/bottleneck_v1/conv3",
          8: "block2/unit_3/bottleneck_v1/conv3",
          16: "block3/unit_22/bottleneck_v1/conv3"},
}


def scope_name(name: str) -> str:
  """Official variable scope: beta variants share the plain one's
  (feature_extractor's `name_scope`), e.g. `resnet_v1_101`."""
  return name[:-len("_beta")] if name.endswith("_beta") else name


def default_multi_grid(name: str):
  """Unit rates of block4 when --multi_grid is not given: [1, 1, 1] for
  every variant, as official `resnet_v1_beta.resnet_v1_*_beta`
  (`multi_grid=None`). Recipes for checkpoints trained with (1, 2, 4) pass
  `--multi_grid` explicitly.
  """
  del name
  return (1, 1, 1)


def build_resnet_v1(inputs: keras.KerasTensor,
                    name: str = "resnet_v1_50",
                    output_stride: int = 16,
                    multi_grid: Optional[Sequence[int]] = None,
                    norm: Optional[deeplab_layers.NormActivation] = None,
                    weight_decay: float = 1e-4,
                    use_bounded_activation: bool = False,
                    kernel_initializer=None
                    ) -> Dict[str, keras.KerasTensor]:
  """Adds a DeepLab ResNet-v1 backbone on top of `inputs`.

  Args:
    inputs: Preprocessed images: ImageNet-mean subtracted for resnet_v1_*,
      [-1, 1] for the beta variants.
    name: One of `VARIANTS`.
    output_stride: 8, 16 or 32.
    multi_grid: Unit rates of block4's three units (default:
      `default_multi_grid(name)`).
    norm: BatchNorm options (default: official `NormActivation(epsilon=1e-5)`;
      the activation stays the backbone's own).
    weight_decay: Slim-convention L2 weight decay.
    use_bounded_activation: ReLU6 instead of ReLU (official flag, for
      quantization).
    kernel_initializer: Initializer of the conv kernels (a Keras
      initializer or its name; `variance_scaling` learns faster from scratch,
      see docs/benchmarks.md); None keeps the official He initializer
      (fan-in variance scaling, scale 2).

  Returns:
    Endpoints by official name without the network prefix: `pool1`, every
    unit's `block{b}/unit_{u}/bottleneck_v1` (after the add and ReLU) and
    its `/conv1`, `/conv2`, `/conv3` (conv3 is the BN output before the
    add: the decoder's low-level feature), `block1`..`block4`, and `final`
    (block4, 2048 channels at stride output_stride).

  Raises:
    ValueError: on an unknown name, a bad output_stride or multi_grid.
  """
  norm = norm or deeplab_layers.NormActivation(epsilon=1e-5)
  if name not in VARIANTS:
    raise ValueError(f"Unknown ResNet {name!r}; known: {sorted(VARIANTS)}.")
  backbone_utils.check_output_stride(output_stride)
  depth, beta = VARIANTS[name]
  multi_grid = tuple(int(r) for r in (multi_grid or default_multi_grid(name)))
  if len(multi_grid) != 3:
    raise ValueError(f"multi_grid takes 3 rates for ResNet block4, got "
                     f"{list(multi_grid)}.")
  new_initializer = backbone_utils.initializer_factory(
      kernel_initializer,
      keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal"))
  max_value = 6.0 if use_bounded_activation else None

  def lname(scope):
    return backbone_utils.keras_name(f"{scope_name(name)}/{scope}")

  def conv_bn(x, filters, kernel, stride, rate, scope, relu=True):
    x = backbone_utils.conv2d_same(x, filters, kernel, stride, rate,
                                   lname(scope), weight_decay,
                                   new_initializer())
    x = norm.batch_norm(lname(f"{scope}/BatchNorm"))(x)
    if relu:
      x = keras.layers.ReLU(max_value, name=lname(f"{scope}/Relu"))(x)
    return x

  endpoints = {}
  # === Root block ===
  if beta:
    x = conv_bn(inputs, 64, 3, 2, 1, "conv1_1")
    x = conv_bn(x, 64, 3, 1, 1, "conv1_2")
    x = conv_bn(x, 128, 3, 1, 1, "conv1_3")
  else:
    x = conv_bn(inputs, 64, 7, 2, 1, "conv1")
  x = keras.layers.MaxPooling2D(3, 2, padding="same", name=lname("pool1"))(x)
  endpoints["pool1"] = x

  # === Blocks ===
  units = []
  for scope, base, num_units, stride in _BLOCKS[depth]:
    units += [(scope, u, base, 1, 1) for u in range(1, num_units)]
    units.append((scope, num_units, base, stride, 1))
  units += [("block4", u, 512, 1, r) for u, r in enumerate(multi_grid, 1)]

  tracker = backbone_utils.OutputStrideTracker(output_stride, current_stride=4)
  for scope, unit, base, declared_stride, unit_rate in units:
    stride, rate = tracker.next_unit(declared_stride)
    unit_scope = f"{scope}/unit_{unit}/bottleneck_v1"
    depth_in = x.shape[-1]
    if depth_in == 4 * base:
      shortcut = x
      if stride > 1:  # slim `subsample`: a 1x1 max pool of stride `stride`.
        shortcut = keras.layers.MaxPooling2D(
            1, stride, name=lname(f"{unit_scope}/shortcut"))(x)
    else:
      shortcut = conv_bn(x, 4 * base, 1, stride, 1, f"{unit_scope}/shortcut",
                         relu=False)
    residual = conv_bn(x, base, 1, 1, 1, f"{unit_scope}/conv1")
    endpoints[f"{unit_scope}/conv1"] = residual
    residual = conv_bn(residual, base, 3, stride, rate * unit_rate,
                       f"{unit_scope}/conv2")
    endpoints[f"{unit_scope}/conv2"] = residual
    residual = conv_bn(residual, 4 * base, 1, 1, 1, f"{unit_scope}/conv3",
                       relu=False)
    endpoints[f"{unit_scope}/conv3"] = residual
    x = keras.layers.Add(name=lname(f"{unit_scope}/add"))([shortcut, residual])
    x = keras.layers.ReLU(max_value, name=lname(f"{unit_scope}/Relu"))(x)
    endpoints[unit_scope] = x
    endpoints[scope] = x
  endpoints["final"] = x
  return endpoints
