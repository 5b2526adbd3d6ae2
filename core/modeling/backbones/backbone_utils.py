"""Helpers shared by the backbone builders (slim conventions in Keras).

* `OutputStrideTracker` is the bookkeeping of slim's `stack_blocks_dense`:
  once the running stride reaches `output_stride`, later strides become 1
  and the atrous rate grows by the stride that was dropped.
* `fixed_padding` is `resnet_utils.fixed_padding`: strided convs of official
  DeepLab pad explicitly (kernel-size dependent, input-size independent) and
  then run 'VALID', so feature pixel `i` sits over input pixel `stride * i`
  whatever the input size.
* Official backbones name variables by TF1 scope (`xception_65/entry_flow/
  conv1_1/weights`); Keras 3 forbids `/` in layer names, so our layers use
  the same scope with `.` instead (`official_scope` maps back).
* `initializer_factory` gives each layer its own initializer: a Keras 3
  random initializer built without a seed draws one seed at construction,
  so one instance shared by several layers would give every layer of the
  same shape identical initial weights.
"""

from typing import Callable, Optional, Tuple

import keras

from deeplab.core.modeling import layers as deeplab_layers

VALID_OUTPUT_STRIDES = (8, 16, 32)


def check_output_stride(output_stride: int):
  """Raises ValueError unless output_stride is 8, 16 or 32."""
  if output_stride not in VALID_OUTPUT_STRIDES:
    raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}.")


def initializer_factory(kernel_initializer, default) -> Callable[
    [], keras.initializers.Initializer]:
  """Returns a function making a new, independently seeded initializer.

  Args:
    kernel_initializer: A Keras initializer, its name or config, or None.
    default: The backbone's official initializer, used when
      `kernel_initializer` is None.
  """
  config = keras.initializers.serialize(
      keras.initializers.get(kernel_initializer or default))
  return lambda: keras.initializers.deserialize(config)


def keras_name(scope: str) -> str:
  """Keras layer name of an official TF1 scope (`/` -> `.`)."""
  return scope.replace("/", ".")


def official_scope(name: str) -> str:
  """Official TF1 scope of one of our layer names (`.` -> `/`)."""
  return name.replace(".", "/")


class OutputStrideTracker:
  """Slim's `stack_blocks_dense` stride/rate bookkeeping.

  Args:
    output_stride: Target ratio of input to output resolution.
    current_stride: Stride already reached before the tracked units.
  """

  def __init__(self, output_stride: int, current_stride: int = 1):
    self.output_stride = output_stride
    self.current_stride = current_stride
    self.rate = 1

  def next_unit(self, stride: int) -> Tuple[int, int]:
    """Returns (stride, rate) to build a unit declared with `stride` at."""
    if self.current_stride == self.output_stride:
      unit_stride, unit_rate = 1, self.rate
      self.rate *= stride
    else:
      unit_stride, unit_rate = stride, 1
      self.current_stride *= stride
    return unit_stride, unit_rate


def fixed_padding(x, kernel_size: int, rate: int = 1,
                  name: Optional[str] = None):
  """Pads `x` as official `fixed_padding` (for a 'VALID' strided conv)."""
  effective = kernel_size + (kernel_size - 1) * (rate - 1)
  total = effective - 1
  begin = total // 2
  return keras.layers.ZeroPadding2D(
      ((begin, total - begin), (begin, total - begin)), name=name)(x)


def conv2d_same(x, filters: int, kernel_size: int, stride: int, rate: int,
                name: str, weight_decay: float, initializer,
                use_bias: bool = False):
  """Official `resnet_utils.conv2d_same`: 'SAME' at stride 1, else explicit
  padding then 'VALID'. Returns the conv output (no BN)."""
  padding = "same"
  if stride > 1:
    x = fixed_padding(x, kernel_size, rate, name=name + ".pad")
    padding = "valid"
  return keras.layers.Conv2D(
      filters, kernel_size, strides=stride, dilation_rate=rate,
      padding=padding, use_bias=use_bias, kernel_initializer=initializer,
      kernel_regularizer=deeplab_layers.l2_regularizer(weight_decay),
      name=name)(x)
