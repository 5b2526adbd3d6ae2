"""The NAS cell of official DeepLab's NAS backbones, and its genotypes.

Follows `research/deeplab/core/nas_cell.py` and `nas_genotypes.py`
(NASNet-style cells: Zoph et al. 2018; Liu et al. 2018 and 2019). A cell
turns its input `h0` and the output of the cell before the previous one
`h1` into `filters * 5` channels:

1. base: `h1` is resized to `h0`'s size if it differs, and projected to
   `filters` channels if it has others (ReLU, 1x1 `prev_1x1`, BN
   `prev_bn`); `h0` goes through ReLU, 1x1 `1x1` and BN `beginning_bn`.
2. five combinations (`comb_iter_{i}`): two hidden states, each through
   one operation (`left`, `right`), summed. Operations named
   `op_kernel_layers`: `separable_KxK_N` (N times ReLU, separable conv,
   BN `bn_sep_KxK_n`), `atrous_KxK` (ReLU, conv at rate 2, BN
   `bn_atr_KxK`; strided: bilinear half-size resize, then rate 1),
   `max_pool_3x3`, `avg_pool_3x3`, `none` (identity, or ReLU + strided 1x1
   + BN `bn_1` when the shape changes). Only operations on the cell inputs
   (`h0`, `h1`) take the cell's stride.
3. output: the concatenation of the hidden states no combination used.

Every operation but `none` ends with drop path when training with
`drop_path_keep_prob < 1` (`DropPath`).

Layer names are the official scopes with `/` replaced by `.`
(`pnasnet.cell_3.comb_iter_0.left.separable_5x5_1`), so official
checkpoints map onto them one to one.
"""

import dataclasses
from typing import Callable, List, Optional, Tuple

import keras
from keras import ops
import tensorflow as tf

from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import backbone_utils


def parse_operation(operation: str) -> Tuple[str, int, int]:
  """(kind, kernel size, layers) of an official operation name."""
  if operation == "none":
    return "none", 1, 1
  parts = operation.split("_")
  kind = "pool" if operation.startswith(("max_pool", "avg_pool")) else parts[0]
  if kind not in ("separable", "atrous", "pool") or len(parts) < 2:
    raise ValueError(f"Unknown NAS operation {operation!r}.")
  kernel = int(parts[-1 if kind == "pool" else 1].split("x")[0])
  layers = int(parts[-1]) if kind == "separable" else 1
  return kind, kernel, layers


@dataclasses.dataclass(frozen=True)
class Genotype:
  """A cell's architecture (official `NASBaseCell` arguments).

  Attributes:
    operations: Operation of each combination input, two per combination.
    used_hiddenstates: 1 for each hidden state (inputs first) consumed by a
      combination: those are left out of the output concatenation.
    hiddenstate_indices: The hidden state each operation reads.
  """
  operations: Tuple[str, ...]
  used_hiddenstates: Tuple[int, ...]
  hiddenstate_indices: Tuple[int, ...]

  def __post_init__(self):
    if (len(self.operations) % 2 or
        len(self.hiddenstate_indices) != len(self.operations)):
      raise ValueError("A NAS genotype takes an even number of operations "
                       "and one hidden-state index per operation.")
    for operation in self.operations:
      parse_operation(operation)


# Official `nas_genotypes.PNASCell` (PNASNet-5).
PNASNET = Genotype(
    ("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
     "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
     "separable_3x3_2", "none"),
    (1, 1, 0, 0, 0, 0, 0),
    (1, 1, 0, 0, 0, 0, 4, 0, 1, 0))
# Official `nas_network.hnasnet` cell (Auto-DeepLab).
HNASNET = Genotype(
    ("atrous_5x5", "separable_3x3_2", "separable_3x3_2", "atrous_3x3",
     "separable_3x3_2", "separable_3x3_2", "separable_5x5_2",
     "separable_5x5_2", "separable_5x5_2", "atrous_5x5"),
    (1, 1, 0, 0, 0, 0, 0),
    (1, 0, 1, 0, 3, 1, 4, 2, 3, 5))


def scale_dimension(size, scale: float):
  """Official `utils.scale_dimension` on a (dynamic) size."""
  return tf.cast((tf.cast(size, tf.float32) - 1.0) * scale + 1.0, tf.int32)


@keras.saving.register_keras_serializable(package="deeplab")
class ScaleResize(keras.layers.Layer):
  """Bilinear resize (align corners) to `scale_dimension(size, scale)`:
  official NAS's half-size resize before a strided atrous conv, and its
  2x upsampling where the backbone path climbs back a stride level.

  Args:
    scale: 0.5 or 2 (any positive factor works).
  """

  def __init__(self, scale: float = 2.0, **kwargs):
    super().__init__(**kwargs)
    self.scale = float(scale)

  def call(self, inputs):
    size = scale_dimension(tf.shape(inputs)[1:3], self.scale)
    y = deeplab_layers.resize_bilinear(inputs, size)
    return ops.cast(y, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    def scaled(d):
      return None if d is None else int((d - 1) * self.scale + 1)
    return (input_shape[0], scaled(input_shape[1]), scaled(input_shape[2]),
            input_shape[3])

  def get_config(self):
    config = super().get_config()
    config.update({"scale": self.scale})
    return config


@keras.saving.register_keras_serializable(package="deeplab")
class DropPath(keras.layers.Layer):
  """Official NAS drop path (`NASBaseCell._apply_drop_path`), training only.

  Drops a whole operation output per example and rescales the kept ones.
  The keep probability falls linearly from 1 at step 0 to `keep_prob` at
  `total_training_steps` (official "decrease keep prob over time");
  `keep_prob` itself is already scaled by the cell's depth (`for_cell`).
  The layer counts its own training calls (`step`, saved in checkpoints),
  one per training step.

  Args:
    keep_prob: Keep probability reached at the end of training.
    total_training_steps: Steps of the linear schedule.
  """

  def __init__(self, keep_prob: float, total_training_steps: int, **kwargs):
    super().__init__(**kwargs)
    self.keep_prob = float(keep_prob)
    self.total_training_steps = int(total_training_steps)
    self.step = self.add_weight(
        name="step", shape=(), dtype="float32", initializer="zeros",
        trainable=False, aggregation="only_first_replica")

  @staticmethod
  def for_cell(keep_prob: float, cell_num: int, total_num_cells: int
               ) -> float:
    """Official depth scaling: cell `cell_num` of `total_num_cells` keeps
    `1 - (cell_num + 1) / total * (1 - keep_prob)`."""
    ratio = (cell_num + 1) / float(total_num_cells)
    return 1.0 - ratio * (1.0 - keep_prob)

  def current_keep_prob(self):
    """The keep probability at the current step."""
    ratio = ops.minimum(1.0, self.step / float(self.total_training_steps))
    return 1.0 - ratio * (1.0 - self.keep_prob)

  def call(self, inputs, training=None):
    if not training or self.keep_prob >= 1.0:
      return inputs
    keep = self.current_keep_prob()
    noise = keras.random.uniform((ops.shape(inputs)[0], 1, 1, 1),
                                 seed=self.seed_generator)
    mask = ops.cast(ops.floor(keep + noise), inputs.dtype)
    self.step.assign_add(1.0)
    return inputs * ops.cast(1.0 / keep, inputs.dtype) * mask

  def build(self, input_shape):
    self.seed_generator = keras.random.SeedGenerator(name="seed_generator")
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update({"keep_prob": self.keep_prob,
                   "total_training_steps": self.total_training_steps})
    return config


@dataclasses.dataclass
class CellBuilder:
  """Adds official NAS cells to a functional graph.

  Attributes:
    genotype: The cell architecture.
    num_conv_filters: Filters at filter scaling 1 (official
      `nas_stem_output_num_conv_filters`).
    name: Network scope (`pnasnet`, `hnasnet`).
    norm: BatchNorm options.
    weight_decay: L2 weight decay on every kernel (depthwise included:
      official `regularize_depthwise=True`).
    new_initializer: Makes each layer's kernel initializer.
    drop_path_keep_prob: Official drop path; 1 builds none.
    total_num_cells: Cells in the network (depth scaling of drop path).
    total_training_steps: Steps of the drop-path schedule.
  """
  genotype: Genotype
  num_conv_filters: int
  name: str
  norm: deeplab_layers.NormActivation
  weight_decay: float
  new_initializer: Callable[[], keras.initializers.Initializer]
  drop_path_keep_prob: float = 1.0
  total_num_cells: int = 12
  total_training_steps: int = 500000

  def layer_name(self, scope: str) -> str:
    return backbone_utils.keras_name(f"{self.name}/{scope}")

  def batch_norm(self, x, scope: str):
    return self.norm.batch_norm(self.layer_name(scope))(x)

  def conv(self, x, filters: int, kernel: int, scope: str, stride: int = 1,
            rate: int = 1):
    """slim.conv2d (no bias) or, strided, `conv2d_same`."""
    if kernel == 1 or stride == 1:
      return keras.layers.Conv2D(
          filters, kernel, strides=stride, dilation_rate=rate, padding="same",
          use_bias=False, kernel_initializer=self.new_initializer(),
          kernel_regularizer=deeplab_layers.l2_regularizer(self.weight_decay),
          name=self.layer_name(scope))(x)
    return backbone_utils.conv2d_same(x, filters, kernel, stride, rate,
                                      self.layer_name(scope), self.weight_decay,
                                      self.new_initializer())

  def __call__(self, net, prev_layer, scope: str, filter_scaling: float,
               stride: int, cell_num: int, resize_prev: bool):
    """One cell (official `NASBaseCell.__call__`).

    Args:
      net: The cell input `h0`.
      prev_layer: `h1`, the output of the cell before the previous one.
      scope: `cell_{i}`.
      filter_scaling: Multiplies `num_conv_filters`.
      stride: 1 or 2.
      cell_num: Index of the cell (drop-path depth scaling).
      resize_prev: `prev_layer` may have another size than `net`.
    """
    filters = int(self.num_conv_filters * filter_scaling)
    states = self._cell_base(net, prev_layer, scope, filters, resize_prev)
    operations = self.genotype.operations
    indices = self.genotype.hiddenstate_indices
    for i in range(len(operations) // 2):
      combined = []
      for side, j in (("left", 2 * i), ("right", 2 * i + 1)):
        combined.append(self._operation(
            states[indices[j]], operations[j],
            stride if indices[j] < 2 else 1,
            f"{scope}/comb_iter_{i}/{side}", filters, cell_num))
      states.append(keras.layers.Add(
          name=self.layer_name(f"{scope}/comb_iter_{i}/combine"))(combined))
    unused = [h for h, used in zip(states, self.genotype.used_hiddenstates)
              if not used]
    return keras.layers.Concatenate(
        name=self.layer_name(f"{scope}/cell_output"))(unused)

  def _cell_base(self, net, prev_layer, scope, filters, resize_prev):
    """[h0, h1] at `filters` channels (official `_cell_base`)."""
    if resize_prev:
      prev_layer = deeplab_layers.ResizeBilinear(
          True, name=self.layer_name(f"{scope}/prev_resize"))([prev_layer, net])
    if prev_layer.shape[-1] != filters:
      prev_layer = keras.layers.ReLU()(prev_layer)
      prev_layer = self.conv(prev_layer, filters, 1, f"{scope}/prev_1x1")
      prev_layer = self.batch_norm(prev_layer, f"{scope}/prev_bn")
    net = keras.layers.ReLU()(net)
    net = self.conv(net, filters, 1, f"{scope}/1x1")
    net = self.batch_norm(net, f"{scope}/beginning_bn")
    return [net, prev_layer]

  def _operation(self, x, operation: str, stride: int, scope: str,
                 filters: int, cell_num: int):
    """One operation (official `_apply_conv_operation`)."""
    kind, kernel, layers = parse_operation(operation)
    if kind == "separable":
      x = self._separable(x, filters, kernel, layers, stride, scope)
    elif kind == "atrous":
      x = keras.layers.ReLU()(x)
      rate = 2
      if stride == 2:
        x = ScaleResize(0.5, name=self.layer_name(f"{scope}/half_resize"))(x)
        rate = 1
      x = self.conv(x, filters, kernel, f"{scope}/atrous_{kernel}x{kernel}",
                     rate=rate)
      x = self.batch_norm(x, f"{scope}/bn_atr_{kernel}x{kernel}")
    elif kind == "pool":
      x = self._pool(x, operation, kernel, stride, scope, filters)
    elif stride > 1 or x.shape[-1] != filters:
      x = keras.layers.ReLU()(x)
      x = self.conv(x, filters, 1, f"{scope}/1x1", stride=stride)
      x = self.batch_norm(x, f"{scope}/bn_1")
    if kind != "none" and self.drop_path_keep_prob < 1.0:
      x = DropPath(DropPath.for_cell(self.drop_path_keep_prob, cell_num,
                                     self.total_num_cells),
                   self.total_training_steps,
                   name=self.layer_name(f"{scope}/drop_path"))(x)
    return x

  def _separable(self, x, filters, kernel, layers, stride, scope):
    """N x (ReLU, `separable_conv2d_same`, BN)."""
    for n in range(1, layers + 1):
      x = keras.layers.ReLU()(x)
      conv_scope = f"{scope}/separable_{kernel}x{kernel}_{n}"
      padding = "same"
      if stride > 1:
        x = backbone_utils.fixed_padding(x, kernel,
                                         name=self.layer_name(conv_scope + "/pad"))
        padding = "valid"
      regularizer = deeplab_layers.l2_regularizer(self.weight_decay)
      x = keras.layers.SeparableConv2D(
          filters, kernel, strides=stride, padding=padding, use_bias=False,
          depthwise_initializer=self.new_initializer(),
          pointwise_initializer=self.new_initializer(),
          depthwise_regularizer=regularizer,
          pointwise_regularizer=deeplab_layers.l2_regularizer(
              self.weight_decay),
          name=self.layer_name(conv_scope))(x)
      x = self.batch_norm(x, f"{scope}/bn_sep_{kernel}x{kernel}_{n}")
      stride = 1
    return x

  def _pool(self, x, operation, kernel, stride, scope, filters):
    """'SAME' max/avg pooling, then 1x1 + BN if the channels differ."""
    pool = (keras.layers.MaxPooling2D if operation.startswith("max")
            else keras.layers.AveragePooling2D)
    x = pool(kernel, strides=stride, padding="same")(x)
    if x.shape[-1] != filters:
      x = self.conv(x, filters, 1, f"{scope}/1x1")
      x = self.batch_norm(x, f"{scope}/bn_1")
    return x


def cell_strides(backbone: List[int], remove_os32_stride: bool
                 ) -> List[Tuple[int, Optional[str], float]]:
  """Per cell: (stride, resampling of its input, filter scaling).

  Official `_build_nas_base`: the backbone lists each cell's level (0: OS4,
  1: OS8, 2: OS16, 3: OS32). A step up strides the cell and doubles the
  filters; a step down upsamples the input 2x first (`"up"`) and halves
  them. With `remove_os32_stride`, the step to level 3 keeps stride 1 (and
  the step back needs no upsampling).
  """
  out, scaling = [], 1.0
  for i, level in enumerate(backbone):
    stride, resample = 1, None
    previous = backbone[i - 1] if i else 0
    if (i == 0 and level == 1) or (i and level == previous + 1):
      stride = 1 if (i and level == 3 and remove_os32_stride) else 2
      scaling *= 2.0
    elif i and level == previous - 1:
      if not (previous == 3 and remove_os32_stride):
        resample = "up"
      scaling /= 2.0
    out.append((stride, resample, scaling))
  return out
