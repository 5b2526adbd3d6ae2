"""Parameter count and multiply-adds of a DeepLab model, as the zoo counts.

Official DeepLab's model zoo reports "multiply-adds": the
multiply-accumulates of convolutions (regular, depthwise, separable) and
dense layers at a given input size, the logits conv and the image-pooling
1x1 conv included; BatchNorm, activations, pooling, adds and resizes left
out. This module counts exactly those.

How: the model is traced once as a `tf.function` on a fixed-size batch of
one (no arithmetic runs), while the `call` of every conv/dense layer class
records its static input and output shapes. Tracing reaches the layers
nested inside composite layers (ASPP, decoder) that a walk over the
functional graph would not see, and counts a shared layer once per call.

Usage:
  python -m deeplab.core.model_stats --model_variant=xception_65 \\
    --output_stride=16 --crop_size=513,513 --num_classes=21 \\
    --atrous_rates=6 --atrous_rates=12 --atrous_rates=18 \\
    --decoder_output_stride=4 [--json]
"""

import contextlib
import dataclasses
import json
from typing import Dict, List, Sequence
from unittest import mock

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class LayerCount:
  """Multiply-adds of one layer call."""
  name: str
  kind: str
  madds: int


def _spatial(shape) -> int:
  return int(np.prod([int(d) for d in shape[1:-1]]))


def _conv_madds(layer, input_shape, output_shape) -> int:
  kernel = int(np.prod(layer.kernel_size))
  cin = int(input_shape[-1])
  out = _spatial(output_shape)
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    return out * kernel * cin * layer.depth_multiplier
  if isinstance(layer, keras.layers.SeparableConv2D):
    depthwise = out * kernel * cin * layer.depth_multiplier
    return depthwise + out * cin * layer.depth_multiplier * layer.filters
  groups = getattr(layer, "groups", 1) or 1
  return out * kernel * (cin // groups) * layer.filters


def _dense_madds(layer, input_shape, output_shape) -> int:
  del output_shape
  rows = int(np.prod([int(d) for d in input_shape[1:-1]] or [1]))
  return rows * int(input_shape[-1]) * layer.units


_COUNTED = (
    (keras.layers.Conv2D, _conv_madds),
    (keras.layers.DepthwiseConv2D, _conv_madds),
    (keras.layers.SeparableConv2D, _conv_madds),
    (keras.layers.Dense, _dense_madds),
)


@contextlib.contextmanager
def _recording(records: List[LayerCount]):
  """Patches the counted layer classes' `call` to record their shapes."""
  with contextlib.ExitStack() as stack:
    for cls, count_fn in _COUNTED:
      original = cls.call

      def call(self, inputs, *args, _original=original, _count=count_fn,
               **kwargs):
        outputs = _original(self, inputs, *args, **kwargs)
        records.append(LayerCount(self.name, type(self).__name__,
                                  _count(self, inputs.shape, outputs.shape)))
        return outputs

      stack.enter_context(mock.patch.object(cls, "call", call))
    yield


def count_params(model: keras.Model) -> int:
  """Number of weights (trainable and not, e.g. BN moving statistics)."""
  return int(sum(np.prod(w.shape) for w in model.weights))


def layer_madds(model: keras.Model, input_size: Sequence[int]
                ) -> List[LayerCount]:
  """Multiply-adds of every conv/dense call for one image of `input_size`.

  Args:
    model: A model taking [batch, H, W, C] images.
    input_size: (H, W).

  Returns:
    One `LayerCount` per call, in call order.
  """
  height, width = (int(s) for s in input_size)
  channels = int(model.inputs[0].shape[-1])
  records: List[LayerCount] = []
  spec = tf.TensorSpec([1, height, width, channels], model.inputs[0].dtype)
  with _recording(records):
    tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
  return records


def model_stats(model: keras.Model, input_size: Sequence[int]
                ) -> Dict[str, int]:
  """Returns {"params": ..., "madds": ...} for one image of `input_size`."""
  madds = sum(r.madds for r in layer_madds(model, input_size))
  return {"params": count_params(model), "madds": int(madds)}
