"""Quantization-aware training: fake-quant ops inserted into a built model.

Official DeepLab trains with `--quantize_delay_step` through TF1's
`contrib.quantize.create_training_graph(quant_delay=...)` and exports with
`create_eval_graph()`. That rewrite folded each BatchNorm into the weights
of the conv before it, fake-quantized those weights, and fake-quantized
activations with ranges kept as moving averages (EMA decay 0.999) of the
batch min/max. Keras 3 has no tfmot, so `quantize_model` does the same
thing to a built DeepLab model, in place:

* every Conv2D / DepthwiseConv2D (top level or inside ASPP, the decoder,
  ...) computes with its kernel fake-quantized to int8, per output channel,
  symmetric and narrow-range ([-127, 127]): the TFLite int8 weight scheme
  (contrib's uint8 scheme was per tensor);
* a conv followed by a BatchNorm computes with that BatchNorm folded into
  its kernel and bias (moving statistics, which then stay fixed; Jacob et
  al. 2018, Sec. 3.2, freeze them too), and the BatchNorm passes its input
  through: `conv(x, fq(w * gamma / sigma)) + beta - gamma * mean / sigma`,
  the graph the TFLite converter turns into one int8 conv;
* activations are fake-quantized (`FakeQuant`, moving-average ranges) at
  the output of every top-level layer except a conv that a BatchNorm
  follows and a BatchNorm that a ReLU follows (they fuse), at the
  output of every `ConvBNReLU` / `SplitSeparableConv2D` (once: ASPP and
  the decoder, which end in one, get no second range), at the raw image
  input (fixed range 0..255), and at the input of any conv whose input is
  not one of those outputs (a pooled mean, a concatenation, a depthwise
  output inside a separable conv);
* the image preprocessing becomes a 1x1 conv, so that it runs int8 too.

The layers, their names and their variables stay those of the float model,
so a float checkpoint restores into a quantized model (only the new range
variables are not in it) and the model the flag does not touch is
unchanged. Quantization is a Python switch (`set_active`): before the delay
step the runner trains the float graph, then switches (and retraces).

Example:

  model = deeplab_model.build_deeplab_model(config)   # float
  quantize.quantize_model(model)                      # now fake-quantized
  quantize.is_quantized(model)                        # True
"""

import types
from typing import Dict, List, Optional, Sequence, Set, Tuple

import keras
from keras import ops
import numpy as np
import tensorflow as tf

from deeplab.core.modeling import layers as deeplab_layers

# contrib.quantize's defaults: 8 bits, EMA decay 0.999.
NUM_BITS = 8
EMA_DECAY = 0.999
# Range of a quantizer before it has seen data (contrib's init_min/max).
INITIAL_RANGE = (-6.0, 6.0)
# Raw pixels: the int8 model's uint8 input, scale 1.
PIXEL_RANGE = (0.0, 255.0)
_CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
# Composite blocks whose output is post-activation: quantized as a whole.
_BLOCK_TYPES = (deeplab_layers.ConvBNReLU, deeplab_layers.SplitSeparableConv2D)
# The attribute that marks a rewritten model (holds a `_State`).
_STATE_ATTRIBUTE = "_deeplab_quantization"
# Input size of the probe that finds which tensors feed which layer.
_PROBE_SIZE = 65


@keras.saving.register_keras_serializable(package="deeplab")
class FakeQuant(keras.layers.Layer):
  """Fake-quantizes a tensor with moving-average min/max ranges.

  contrib.quantize's `MovingAvgQuantize`: in training the range is an
  exponential moving average of the batch min and max (widened to hold 0),
  updated before the batch is quantized with it; at inference the stored
  range is used. One difference: the first updates average the batches
  seen so far (decay `n / (n + 1)` until it reaches `ema_decay`), so a
  short fine-tuning run does not inherit contrib's arbitrary [-6, 6] start.
  Under a distribution strategy the batch range is the global batch's
  (gathered from the replicas), as on one device.

  Args:
    ema_decay: Moving-average decay of the range.
    num_bits: Bits of the quantized values.
    fixed_range: (min, max) kept fixed instead (e.g. raw pixels).
  """

  def __init__(self, ema_decay: float = EMA_DECAY, num_bits: int = NUM_BITS,
               fixed_range: Optional[Sequence[float]] = None, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= ema_decay < 1:
      raise ValueError(f"FakeQuant ema_decay must be in [0, 1), got "
                       f"{ema_decay}.")
    if not 2 <= num_bits <= 16:
      raise ValueError(f"FakeQuant num_bits must be in [2, 16], got "
                       f"{num_bits}.")
    self.ema_decay = float(ema_decay)
    self.num_bits = int(num_bits)
    self.fixed_range = (tuple(float(v) for v in fixed_range)
                        if fixed_range is not None else None)
    # A Python switch (not serialised): off, the layer is the identity.
    self.active = True

  def build(self, input_shape=None):
    low, high = self.fixed_range or INITIAL_RANGE
    # Every replica computes the same new range (`_global_batch_range`);
    # "mean" keeps the mirrored copies equal when they are assigned.
    self.min = self.add_weight(
        name="min", shape=(), trainable=False, aggregation="mean",
        initializer=keras.initializers.Constant(low))
    self.max = self.add_weight(
        name="max", shape=(), trainable=False, aggregation="mean",
        initializer=keras.initializers.Constant(high))
    self.updates = self.add_weight(
        name="updates", shape=(), trainable=False, initializer="zeros",
        aggregation="only_first_replica")
    self.built = True

  def _updated_range(self, x) -> Tuple[tf.Tensor, tf.Tensor]:
    """Moves the range toward this batch's; returns the new range."""
    batch_min, batch_max = _global_batch_range(tf.reduce_min(x),
                                               tf.reduce_max(x))
    batch_min = tf.minimum(batch_min, 0.0)
    batch_max = tf.maximum(batch_max, 0.0)
    count = tf.convert_to_tensor(self.updates)
    decay = tf.minimum(self.ema_decay, count / (count + 1.0))
    new_min = decay * self.min + (1.0 - decay) * batch_min
    new_max = decay * self.max + (1.0 - decay) * batch_max
    self.min.assign(new_min)
    self.max.assign(new_max)
    self.updates.assign(count + 1.0)
    return new_min, new_max

  def call(self, inputs, training=None):
    if not self.active:
      return inputs
    x = tf.cast(inputs, tf.float32)
    if training and self.fixed_range is None:
      low, high = self._updated_range(tf.stop_gradient(x))
    else:
      low = tf.convert_to_tensor(self.min)
      high = tf.convert_to_tensor(self.max)
    y = tf.quantization.fake_quant_with_min_max_vars(
        x, low, high, num_bits=self.num_bits, narrow_range=False)
    return tf.cast(y, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"ema_decay": self.ema_decay, "num_bits": self.num_bits,
                   "fixed_range": (list(self.fixed_range)
                                   if self.fixed_range else None)})
    return config


def _global_batch_range(batch_min: tf.Tensor,
                        batch_max: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """The min and max of the global batch, under a distribution strategy.

  Each replica sees only its slice of the batch; gathering the replicas'
  min and max gives every replica the range one device would see on the
  whole batch, so a mirrored run quantizes with and stores the ranges of
  the single-device run (averaging the replicas' ranges instead would
  narrow them as the per-replica batch shrinks). Official DeepLab has no
  reference: its train.py refuses `--quantize_delay_step` with
  `--num_clones` > 1.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return batch_min, batch_max
  # min(a) = -max(-a): one gather of both, [replicas, 2].
  gathered = context.all_gather(tf.stack([-batch_min, batch_max])[None],
                                axis=0)
  reduced = tf.reduce_max(gathered, axis=0)
  return -reduced[0], reduced[1]


def fake_quant_weights(kernel: tf.Tensor, depthwise: bool = False,
                       num_bits: int = NUM_BITS) -> tf.Tensor:
  """Fake-quantizes a conv kernel per output channel, symmetric, narrow range.

  TFLite's int8 weights: zero point 0, values in [-127, 127], one scale per
  output channel (the last axis; for a depthwise kernel
  [h, w, in, multiplier], each of the `in * multiplier` outputs). The range
  is the kernel's own max |w| (contrib's `LastValueQuantize`), so scaling an
  output channel by s > 0 scales its quantized weights by s exactly: folding
  a BatchNorm before or after this op gives the same weights.
  """
  shape = kernel.shape
  flat = (tf.reshape(kernel, list(shape[:2]) + [1, shape[2] * shape[3]])
          if depthwise else kernel)
  bound = tf.stop_gradient(tf.reduce_max(tf.abs(flat), axis=(0, 1, 2)))
  bound = tf.maximum(bound, 1e-8)
  quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
      flat, -bound, bound, num_bits=num_bits, narrow_range=True)
  return tf.reshape(quantized, shape) if depthwise else quantized


def fold_batch_norm(kernel, bias, bn: keras.layers.BatchNormalization,
                    depthwise: bool = False):
  """The kernel and bias of `conv` then `bn` (moving statistics) as one conv.

  Returns:
    (kernel * gamma / sigma, (bias - mean) * gamma / sigma + beta), with
    sigma = sqrt(moving_variance + epsilon).
  """
  scale = bn.gamma * tf.math.rsqrt(bn.moving_variance + bn.epsilon)
  offset = bn.beta - bn.moving_mean * scale
  if bias is not None:
    offset = offset + bias * scale
  if depthwise:
    scale = tf.reshape(scale, kernel.shape[2:])
  return kernel * scale, offset


class _State:
  """What `quantize_model` did to a model (a plain, untracked object).

  Attributes:
    quantizers: Every `FakeQuant` added.
    folded: The BatchNorm layers folded into the conv before them.
    active: Whether the fake-quant graph runs (else the float one).
  """

  def __init__(self):
    self.quantizers: List[FakeQuant] = []
    self.folded: Set[int] = set()
    self.active = True


def _add_quantizer(layer, attribute: str, state: _State,
                   fixed_range=None) -> FakeQuant:
  """Adds a tracked `FakeQuant` sublayer to an already built layer."""
  # The layer's path (e.g. aspp/image_pooling/conv) names it uniquely.
  path = (layer.path or layer.name).replace("/", "_")
  quantizer = FakeQuant(fixed_range=fixed_range, name=f"{path}_{attribute}")
  quantizer.build()
  layer._tracker.unlock()  # pylint: disable=protected-access
  try:
    setattr(layer, attribute, quantizer)
  finally:
    layer._tracker.lock()  # pylint: disable=protected-access
  state.quantizers.append(quantizer)
  return quantizer


def _quantized_conv_call(layer, bn, input_quantizer, state):
  """The `call` of a quantized conv (BatchNorm `bn` folded in, if any)."""
  float_call = layer.call
  depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)

  def call(inputs):
    if not state.active:
      return float_call(inputs)
    x = input_quantizer(inputs) if input_quantizer is not None else inputs
    kernel, bias = layer.kernel, layer.bias if layer.use_bias else None
    if bn is not None:
      kernel, bias = fold_batch_norm(kernel, bias, bn, depthwise)
    kernel = fake_quant_weights(kernel, depthwise)
    options = dict(strides=layer.strides, padding=layer.padding,
                   dilation_rate=layer.dilation_rate,
                   data_format=layer.data_format)
    y = (ops.depthwise_conv(x, kernel, **options) if depthwise
         else ops.conv(x, kernel, **options))
    if bias is not None:
      y = y + bias
    return layer.activation(y) if layer.activation is not None else y

  return call


def _folded_batch_norm_call(bn, state):
  """The `call` of a folded BatchNorm: the identity while quantized."""
  float_call = bn.call

  def call(inputs, training=None, mask=None):
    if state.active:
      return inputs
    return float_call(inputs, training=training, mask=mask)

  return call


def _output_quantized_call(layer, quantizer, state):
  """`layer.call`, then `quantizer` on its output while quantized."""
  float_call = layer.call

  def call(*args, **kwargs):
    outputs = float_call(*args, **kwargs)
    return quantizer(outputs) if state.active else outputs

  return call


def _affine_of(float_call) -> Tuple[np.ndarray, np.ndarray]:
  """(matrix [in, out], offset [out]) of a per-pixel affine map of 3
  channels (the image preprocessing), read off its values at 0 and e_i."""
  basis = np.concatenate([np.zeros((1, 3)), np.eye(3)]).astype(np.float32)
  values = np.asarray(float_call(tf.constant(basis.reshape(1, 1, 4, 3))))
  offset = values[0, 0, 0]
  return values[0, 0, 1:] - offset, offset


def _quantized_affine_call(layer, input_quantizer, state):
  """The image preprocessing as a 1x1 conv on fake-quantized pixels.

  `x / 127.5 - 1` (or a mean subtraction) as a multiply and a subtract
  would stay float in the int8 model (the converter quantizes no constant
  operand without a fake-quant); as a 1x1 conv it becomes one int8 conv on
  the uint8 pixels. Official DeepLab's int8 export left the preprocessing
  out instead (`quantized_input_stats` 127.5, 127.5).
  """
  float_call = layer.call
  matrix, offset = _affine_of(float_call)
  kernel = tf.constant(matrix.reshape(1, 1, 3, 3))
  offset = tf.constant(offset)

  def call(inputs):
    if not state.active:
      return float_call(inputs)
    x = input_quantizer(tf.cast(inputs, tf.float32))
    return ops.conv(x, fake_quant_weights(kernel), padding="same") + offset

  return call


def _probe(model: keras.Model) -> List[Tuple[keras.layers.Layer, int, int]]:
  """(layer, id of its input, id of its output) of every layer call (nested
  ones included), in call order, from one small float forward pass."""
  events, keep = [], []
  watched = [l for l in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
             if not isinstance(l, (keras.layers.InputLayer, keras.Model))]
  originals = {id(l): l.call for l in watched}

  def recording(layer):
    original = originals[id(layer)]

    def call(inputs, *args, **kwargs):
      outputs = original(inputs, *args, **kwargs)
      keep.extend([inputs, outputs])  # Ids stay unique while kept.
      events.append((layer, id(inputs), id(outputs)))
      return outputs

    return call

  for layer in watched:
    setattr_untracked(layer, "call", recording(layer))
  try:
    shape = [1] + [d or _PROBE_SIZE for d in model.input.shape[1:]]
    model(np.zeros(shape, np.float32), training=False)
  finally:
    for layer in watched:
      object.__delattr__(layer, "call")
  return events


def _fuses(layer) -> bool:
  """Whether TFLite fuses activation `layer` into the conv before it (ReLU,
  ReLU6), so the conv's own output needs no range; hard-swish and the like
  are separate int8 ops, which need their input's range."""
  if isinstance(layer, keras.layers.ReLU):
    return (not layer.negative_slope and not layer.threshold and
            layer.max_value in (None, 6.0))
  if isinstance(layer, keras.layers.Activation):
    return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
  return False


def _top_level_output_layers(model: keras.Model) -> List[keras.layers.Layer]:
  """Top-level layers whose output gets a quantizer: all but convs that a
  BatchNorm follows and BatchNorms that a ReLU follows (they fuse), and the
  input."""
  chosen = []
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      continue
    consumers = [node.operation for node in layer._outbound_nodes]  # pylint: disable=protected-access
    single = consumers[0] if len(consumers) == 1 else None
    if isinstance(layer, _CONV_TYPES) and isinstance(
        single, keras.layers.BatchNormalization):
      continue
    if isinstance(layer, keras.layers.BatchNormalization) and _fuses(single):
      continue
    chosen.append(layer)
  return chosen


def _output_quantized_layers(model, events) -> List[keras.layers.Layer]:
  """The layers that get an output quantizer: every `ConvBNReLU` /
  `SplitSeparableConv2D`, then the top-level layers whose output is not
  already one of theirs (ASPP and the decoder end in such a block: a
  second fake-quant of the same tensor with another range would make the
  converter reject the same-scale resize after it)."""
  blocks = [l for l in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
            if isinstance(l, _BLOCK_TYPES)]
  block_ids = {id(l) for l in blocks}
  quantized = {o for l, _, o in events if id(l) in block_ids}
  chosen = list(blocks)
  for layer in _top_level_output_layers(model):
    produced = [o for l, _, o in events if l is layer]
    if id(layer) in block_ids or (produced and set(produced) <= quantized):
      continue
    chosen.append(layer)
  return chosen


def _conv_batch_norm_pairs(events) -> Dict[int, keras.layers.Layer]:
  """id(conv) -> the BatchNorm that takes the conv's output."""
  producer = {}
  pairs = {}
  for layer, input_id, output_id in events:
    if isinstance(layer, _CONV_TYPES):
      producer[output_id] = layer
    elif isinstance(layer, keras.layers.BatchNormalization):
      conv = producer.get(input_id)
      if conv is not None:
        pairs[id(conv)] = layer
  return pairs


def quantize_model(model: keras.Model) -> keras.Model:
  """Inserts quantization-aware-training fake-quant ops into `model`.

  In place (see the module docstring); call it on a built model, under the
  strategy scope the model was built in (it creates the range variables),
  after restoring float weights if any.

  Args:
    model: A functional DeepLab model with float32 weights.

  Returns:
    `model`, now quantized (`is_quantized`).

  Raises:
    ValueError: when `model` is already quantized, or computes in another
      dtype than float32 (mixed precision).
  """
  if is_quantized(model):
    raise ValueError(f"Model {model.name} is already quantized.")
  if model.compute_dtype != "float32":
    raise ValueError("Quantization-aware training (--quantize_delay_step) "
                     "needs float32 training, not mixed precision.")
  events = _probe(model)
  state = _State()
  outputs = _output_quantized_layers(model, events)
  output_ids = {id(l) for l in outputs}
  quantized_outputs = {o for l, _, o in events if id(l) in output_ids}
  # Convs and folded BatchNorms first: an output quantizer then wraps the
  # folded (identity) BatchNorm, not the other way round.
  _quantize_convs(model, events, _conv_batch_norm_pairs(events),
                  quantized_outputs, state)
  for layer in model.layers:
    if isinstance(layer, deeplab_layers.ImagePreprocessing):
      quantizer = _add_quantizer(layer, "input_quantizer", state,
                                 fixed_range=PIXEL_RANGE)
      setattr_untracked(layer, "call",
                        _quantized_affine_call(layer, quantizer, state))
  for layer in outputs:
    quantizer = _add_quantizer(layer, "output_quantizer", state)
    setattr_untracked(layer, "call",
                      _output_quantized_call(layer, quantizer, state))
  setattr_untracked(model, _STATE_ATTRIBUTE, state)
  return model


def _quantize_convs(model, events, pairs, quantized_outputs, state):
  """Fake-quantizes every conv's weights, folds its BatchNorm, and adds an
  input quantizer where its input is not already quantized."""
  inputs = {}
  for layer, input_id, _ in events:
    inputs.setdefault(id(layer), input_id)
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if not isinstance(layer, _CONV_TYPES):
      continue
    if getattr(layer, "groups", 1) != 1:
      raise ValueError(f"Quantization of grouped conv {layer.name} is not "
                       "supported.")
    input_quantizer = None
    if inputs.get(id(layer)) not in quantized_outputs:
      input_quantizer = _add_quantizer(layer, "input_quantizer", state)
    bn = pairs.get(id(layer))
    if bn is not None:
      state.folded.add(id(bn))
      setattr_untracked(bn, "call", _folded_batch_norm_call(bn, state))
    setattr_untracked(layer, "call", _quantized_conv_call(
        layer, bn, input_quantizer, state))


def setattr_untracked(layer: keras.layers.Layer, name: str, value) -> None:
  """Sets an attribute that Keras' tracker and checkpoints do not see."""
  object.__setattr__(layer, name, value)


def is_quantized(model: keras.Model) -> bool:
  """Whether `quantize_model` rewrote `model`."""
  return isinstance(getattr(model, _STATE_ATTRIBUTE, None), _State)


def set_active(model: keras.Model, active: bool) -> bool:
  """Runs `model` fake-quantized (True) or as the float model (False).

  A Python switch: a traced function keeps the graph it was traced with,
  so retrace after a change. Returns whether anything changed.
  """
  state = getattr(model, _STATE_ATTRIBUTE)
  if state.active == bool(active):
    return False
  state.active = bool(active)
  for quantizer in state.quantizers:
    quantizer.active = state.active
  return True


def quantizers(model: keras.Model) -> List[FakeQuant]:
  """The `FakeQuant` layers `quantize_model` added (empty if none)."""
  state = getattr(model, _STATE_ATTRIBUTE, None)
  return list(state.quantizers) if state is not None else []


def describe(model: keras.Model) -> types.SimpleNamespace:
  """Counts of what `quantize_model` added, for logs and tests."""
  state = getattr(model, _STATE_ATTRIBUTE)
  return types.SimpleNamespace(quantizers=len(state.quantizers),
                               folded_batch_norms=len(state.folded))
