"""NAS backbones of official DeepLab: PNASNet-5 and Auto-DeepLab.

Follows `research/deeplab/core/nas_network.py`:

* `nas_pnasnet`: PNASNet-5 (Liu et al., ECCV 2018, "Progressive Neural
  Architecture Search"), 12 PNAS cells on a path that stays at stride 8
  (output_stride 8), or goes to 16 after cell 3 (16), and to 32 after
  cell 7 (32).
* `nas_hnasnet`: Auto-DeepLab (Liu et al., CVPR 2019, "Auto-DeepLab:
  Hierarchical Neural Architecture Search for Semantic Image
  Segmentation"), 12 searched cells on the searched path
  4, 4, 4, 8, 16, 8, 16, 16, 32, 32, 16, 8: its features come out at
  stride 8.

Both start with the NAS stem (`conv0` 3x3/2, `conv1` 3x3, `conv2` 3x3/2,
each + BN), and end with a ReLU; `nas_use_classification_head` adds the
ImageNet classification head (3x3 convs down to stride 32, strided until
`output_stride`, atrous after, then a 1x1 conv to 2048 channels).
Weights: variance scaling (factor 1/3, fan in, uniform), L2 weight decay
on every kernel; BatchNorm epsilon 1e-3 (official `nas_arg_scope`).

Endpoints (official names): `Stem`, `Cell_0` ... `Cell_11` (cell outputs,
before the next cell's ReLU), `downsample_os{16,32}`,
`classification_head`, and `final`. Layer names are the official scopes
(`pnasnet/cell_0/1x1`, `hnasnet/conv0_bn`) with `.` for `/`, so the
DeepLab NAS ImageNet checkpoints (`pnasnet/...`, `hnasnet/...`) and
DeepLab checkpoints map onto them one to one.
"""

from typing import Dict, List, Optional

import keras

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils
from deeplab.core.modeling.backbones import nas_cell

# --model_variant -> official network scope (feature_extractor.name_scope).
SCOPES = {"nas_pnasnet": "pnasnet", "nas_hnasnet": "hnasnet"}
GENOTYPES = {"nas_pnasnet": nas_cell.PNASNET, "nas_hnasnet": nas_cell.HNASNET}
# Official feature_extractor DECODER_END_POINTS.
DECODER_ENDPOINTS = {
    "nas_pnasnet": {4: "Stem", 8: "Cell_3", 16: "Cell_7"},
    "nas_hnasnet": {4: "Cell_2", 8: "Cell_5", 16: "Cell_7"},
}
# Cell levels (0: stride 4 ... 3: stride 32), official `pnasnet`/`hnasnet`.
PNASNET_BACKBONES = {8: [1] * 12, 16: [1] * 4 + [2] * 8,
                     32: [1] * 4 + [2] * 4 + [3] * 4}
HNASNET_BACKBONE = [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]
# Channels of the classification head's downsampling convs.
_HEAD_FILTERS = {8: 256, 16: 512, 32: 1024}


def _levels(name: str, output_stride: int) -> List[int]:
  if name == "nas_hnasnet":
    return HNASNET_BACKBONE
  return PNASNET_BACKBONES[output_stride]


def _head_plan(levels: List[int], output_stride: int):
  """(scope, filters, stride, rate) of the classification head's convs."""
  current_scale = 2 + levels[-1]
  remaining = output_stride // 2 ** current_scale
  plan, rate = [], 1
  for target_scale in range(current_scale + 1, 6):
    target = 2 ** target_scale
    if remaining != 1:
      stride, remaining = 2, remaining // 2
    else:
      stride, rate = 1, rate * 2
    plan.append((f"downsample_os{target}", _HEAD_FILTERS[target], stride,
                 rate))
  return plan


def feature_stride(name: str, output_stride: int,
                   use_classification_head: bool = False,
                   remove_os32_stride: bool = False) -> int:
  """The stride the network's `final` feature comes out at."""
  levels = _levels(name, output_stride)
  stride = 4
  for cell_stride, resample, _ in nas_cell.cell_strides(levels,
                                                        remove_os32_stride):
    stride = stride // 2 if resample == "up" else stride
    stride *= cell_stride
  if use_classification_head:
    if output_stride % 2 ** (2 + levels[-1]):
      return -1  # Official: "output_stride must be a multiple of ...".
    for _, _, conv_stride, _ in _head_plan(levels, output_stride):
      stride *= conv_stride
  return stride


def _check(name, output_stride, use_classification_head, remove_os32_stride):
  backbone_utils.check_output_stride(output_stride)
  actual = feature_stride(name, output_stride, use_classification_head,
                          remove_os32_stride)
  if actual != output_stride:
    raise ValueError(
        f"--model_variant={name} with --output_stride={output_stride}"
        f"{' --nas_use_classification_head' * use_classification_head}"
        f"{' --nas_remove_os32_stride' * remove_os32_stride} gives features "
        f"at stride {actual}, not {output_stride}: "
        + ("nas_hnasnet's searched path ends at stride 8 (use "
           "--output_stride=8, or --nas_use_classification_head to reach 16 "
           "or 32)." if name == "nas_hnasnet" else
           "--nas_remove_os32_stride keeps cells 8-11 at stride 16; use "
           "--output_stride=16."))


def build_nas_network(inputs: keras.KerasTensor,
                      name: str = "nas_pnasnet",
                      output_stride: int = 16,
                      num_conv_filters: int = 20,
                      use_classification_head: bool = False,
                      remove_os32_stride: bool = False,
                      norm: Optional[deeplab_layers.NormActivation] = None,
                      weight_decay: float = 4e-5,
                      drop_path_keep_prob: float = 1.0,
                      total_training_steps: int = 500000,
                      kernel_initializer=None
                      ) -> Dict[str, keras.KerasTensor]:
  """Adds a NAS backbone on top of `inputs`.

  Args:
    inputs: Preprocessed images (range [-1, 1]), [batch, height, width, 3].
    name: `nas_pnasnet` or `nas_hnasnet`.
    output_stride: 8, 16 or 32 (nas_pnasnet picks its cell path by it;
      nas_hnasnet needs 8, or the classification head).
    num_conv_filters: Filters of the first cells (official
      `nas_stem_output_num_conv_filters`, 20); cells at stride 2**k * 4
      have 2**k times as many, and output 5 times that.
    use_classification_head: Official `nas_use_classification_head`.
    remove_os32_stride: Official `nas_remove_os32_stride`: cells at level
      3 (stride 32) stay at stride 16.
    norm: BatchNorm options (epsilon 1e-3 official).
    weight_decay: Slim-convention L2 weight decay.
    drop_path_keep_prob: Official drop path (training only); 1 builds none.
    total_training_steps: Steps over which drop path ramps in.
    kernel_initializer: None keeps the official variance scaling.

  Returns:
    Endpoints by official name (see the module docstring).

  Raises:
    ValueError: on an unknown name, or options giving features at a
      stride other than `output_stride`.
  """
  if name not in SCOPES:
    raise ValueError(f"Unknown NAS network {name!r}; known: {sorted(SCOPES)}.")
  _check(name, output_stride, use_classification_head, remove_os32_stride)
  levels = _levels(name, output_stride)
  cell = nas_cell.CellBuilder(
      GENOTYPES[name], num_conv_filters, SCOPES[name],
      norm or deeplab_layers.NormActivation(), weight_decay,
      backbone_utils.initializer_factory(
          kernel_initializer, keras.initializers.VarianceScaling(
              1 / 3.0, mode="fan_in", distribution="uniform")),
      drop_path_keep_prob, len(levels), total_training_steps)

  endpoints = {}
  net, cell_outputs = _stem(inputs, cell)
  endpoints["Stem"] = net
  strides, current, upsampled = [2, 4], 4, False
  for i, (stride, resample, scaling) in enumerate(
      nas_cell.cell_strides(levels, remove_os32_stride)):
    if resample == "up":
      net = nas_cell.ScaleResize(
          2.0, name=cell.layer_name(f"cell_{i}/upsample"))(net)
      current //= 2
      upsampled = True
    net = cell(net, cell_outputs[-2], f"cell_{i}", scaling, stride, i,
               resize_prev=upsampled or strides[-2] != current)
    current *= stride
    endpoints[f"Cell_{i}"] = net
    cell_outputs.append(net)
    strides.append(current)
  net = keras.layers.ReLU()(net)
  if use_classification_head:
    net = _classification_head(net, cell, levels, output_stride, endpoints)
  endpoints["final"] = net
  return endpoints


def _stem(inputs, cell: nas_cell.CellBuilder):
  """Official `_nas_stem`: (stem output, [conv1 output, stem output])."""
  net = cell.conv(inputs, 64, 3, "conv0", stride=2)
  net = keras.layers.ReLU()(cell.batch_norm(net, "conv0_bn"))
  net = cell.batch_norm(cell.conv(net, 64, 3, "conv1"), "conv1_bn")
  outputs = [net]
  net = keras.layers.ReLU()(net)
  net = cell.batch_norm(cell.conv(net, 128, 3, "conv2", stride=2), "conv2_bn")
  outputs.append(net)
  return net, outputs


def _classification_head(net, cell: nas_cell.CellBuilder, levels,
                         output_stride, endpoints):
  """Official ImageNet head: convs down to stride 32, then 1x1 to 2048."""
  for scope, filters, stride, rate in _head_plan(levels, output_stride):
    net = cell.conv(net, filters, 3, f"{scope}_conv", stride=stride,
                    rate=rate)
    net = cell.batch_norm(net, f"{scope}_bn")
    endpoints[scope] = net
    net = keras.layers.ReLU()(net)
  net = cell.batch_norm(cell.conv(net, 2048, 1, "classification_head_conv"),
                 "classification_head_bn")
  endpoints["classification_head"] = net
  return keras.layers.ReLU()(net)
