"""ONNX export through tf2onnx (extra `export`).

The exported graph is the shared inference function: input `ImageTensor`
uint8 [B, H, W, 3] of any size; output `semantic_predictions` int32
[B, H, W] and, with `with_probabilities`, `probabilities` and `logits`
float32 [B, H, W, C] (NHWC, like the SavedModel).

tf2onnx runs the network in NCHW and pushes the final transpose back to
NHWC below the softmax, which then runs on axis 1 of [B, C, H, W]: in
onnxruntime that one node took 2033 ms against 112 ms on the last axis
(TRAPS.md). `softmax_on_last_axis` moves it after the transpose.

tf2onnx 1.17 at opset 17 with onnxruntime matches TF to about 1e-4 of the
largest logit (TRAPS.md): compare argmaxes, or logits relative to their
range.

Example:

  write_onnx(model, "/models/deeplab.onnx")
"""

from typing import Sequence

import keras
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.export import saved_model

OPSET = 17
INPUT_NAME = "ImageTensor"


def _require_tf2onnx():
  try:
    import tf2onnx  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError("ONNX export needs tf2onnx: pip install "
                     "'deeplab[export]'.") from None
  return tf2onnx


def write_onnx(model: keras.Model, path: str,
               scales: Sequence[float] = (1.0,),
               add_flipped_images: bool = False,
               opset: int = OPSET,
               with_probabilities: bool = False) -> str:
  """Converts the inference function to ONNX and writes it (atomically).

  Args:
    model: The Keras DeepLab model.
    path: The `.onnx` file to write.
    scales: Inference scales baked into the graph.
    add_flipped_images: Also average left-right flipped inputs.
    opset: ONNX opset.
    with_probabilities: Also output `probabilities` and `logits` (NHWC);
      the default outputs `semantic_predictions` only.

  Raises:
    ValueError: when tf2onnx is not installed.
  """
  proto = convert(model, tf.TensorSpec([None, None, None, 3], tf.uint8,
                                       name=INPUT_NAME),
                  scales, add_flipped_images, opset, with_probabilities)
  io_utils.atomic_write_bytes(path, proto.SerializeToString())
  return path


def convert(model: keras.Model, input_spec: tf.TensorSpec,
            scales: Sequence[float] = (1.0,),
            add_flipped_images: bool = False, opset: int = OPSET,
            with_probabilities: bool = False, input_as_nchw: bool = False):
  """The inference function for `input_spec` as an ONNX `ModelProto`.

  `write_onnx` uses uint8 NHWC pixels of any size; the MNN export a
  float32 NCHW input of fixed size (`input_as_nchw`: what MNN's
  calibration feeds). Other arguments as in `write_onnx`.
  """
  tf2onnx = _require_tf2onnx()
  keys = ((saved_model.LABELS, saved_model.PROBABILITIES, saved_model.LOGITS)
          if with_probabilities else (saved_model.LABELS,))

  @tf.function
  def infer(images):
    outputs = saved_model.inference_outputs(model, images, scales,
                                            add_flipped_images,
                                            with_probabilities)
    return {key: outputs[key] for key in keys}

  proto, _ = tf2onnx.convert.from_function(
      infer, input_signature=[input_spec], opset=opset,
      inputs_as_nchw=[f"{input_spec.name}:0"] if input_as_nchw else None)
  softmax_on_last_axis(proto.graph)
  return proto


_TO_NHWC = [0, 2, 3, 1]
_TO_NCHW = [0, 3, 1, 2]


def _perm(node) -> list:
  return next((list(a.ints) for a in node.attribute if a.name == "perm"), [])


def _consumers(graph, name: str) -> list:
  return [n for n in graph.node if name in n.input]


def softmax_on_last_axis(graph) -> int:
  """Rewrites every NCHW `Softmax(axis=1)` to run on NHWC's last axis.

  `Softmax(x, axis=1)` becomes `Softmax(Transpose(x, to NHWC), axis=-1)`,
  reusing a transpose of `x` that is there already (the `logits` output's);
  a consumer that transposes the result to NHWC reads it directly, any
  other gets it transposed back. In place; returns the number rewritten.

  Args:
    graph: An `onnx.GraphProto` (tf2onnx's output).
  """
  from onnx import helper  # pylint: disable=g-import-not-at-top
  rewritten = 0
  for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
    axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
    if axis not in (1, -3):
      continue
    source = softmax.input[0]
    to_nhwc = next((n for n in _consumers(graph, source)
                    if n.op_type == "Transpose" and _perm(n) == _TO_NHWC),
                   None)
    if to_nhwc is None:
      to_nhwc = helper.make_node("Transpose", [source],
                                      [f"{source}__nhwc"], perm=_TO_NHWC,
                                      name=f"{softmax.name}__to_nhwc")
      graph.node.insert(list(graph.node).index(softmax), to_nhwc)
    softmax.input[0] = to_nhwc.output[0]
    for attribute in softmax.attribute:
      if attribute.name == "axis":
        attribute.i = -1
    _reroute_nchw_consumers(graph, softmax)
    rewritten += 1
  return rewritten


def _reroute_nchw_consumers(graph, softmax) -> None:
  """Feeds the (now NHWC) softmax output to the consumers of its NCHW one."""
  from onnx import helper  # pylint: disable=g-import-not-at-top
  nchw = softmax.output[0]
  nhwc = f"{nchw}__nhwc"
  softmax.output[0] = nhwc
  for info in list(graph.value_info):
    if info.name == nchw:  # Its recorded shape is the NCHW one.
      graph.value_info.remove(info)
  needs_nchw = nchw in {output.name for output in graph.output}
  for consumer in _consumers(graph, nchw):
    if consumer.op_type == "Transpose" and _perm(consumer) == _TO_NHWC:
      # Transpose(NCHW -> NHWC) of the old output: the new output itself.
      consumer.op_type = "Identity"
      del consumer.attribute[:]
      consumer.input[0] = nhwc
    else:
      needs_nchw = True
  if needs_nchw:
    graph.node.insert(list(graph.node).index(softmax) + 1, helper.make_node(
        "Transpose", [nhwc], [nchw], perm=_TO_NCHW,
        name=f"{softmax.name}__to_nchw"))
