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

from typing import Optional, Sequence

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
      custom_rewriter=[rewrite_same_dilations],
      inputs_as_nchw=[f"{input_spec.name}:0"] if input_as_nchw else None)
  softmax_on_last_axis(proto.graph)
  return proto


def _same_paddings(paddings) -> Optional[list]:
  """[[start, end]] per spatial axis of TF's `required_space_to_batch_paddings`
  for 'SAME' convs on a dynamic size, or None for another structure.

  There, axis i's paddings are `Pack(start_i, StridedSlice(AddV2(ends,
  FloorMod(...)), i))`: a constant start, and a constant end plus what
  makes the size divisible by the rate (which a dilated conv never needs).
  """
  if paddings.type != "Pack":
    return None
  result = []
  for axis, pair in enumerate(paddings.inputs):
    if pair.type != "Pack" or len(pair.inputs) != 2:
      return None
    start, end = pair.inputs
    if (not start.is_const() or end.type != "StridedSlice" or
        end.inputs[0].type not in ("Add", "AddV2") or
        end.inputs[1].get_tensor_value(as_list=True) != [axis]):
      return None
    ends = [i for i in end.inputs[0].inputs if i.is_const()]
    mods = [i for i in end.inputs[0].inputs if i.type == "FloorMod"]
    if len(ends) != 1 or len(mods) != 1:
      return None
    result.append([start.get_tensor_value(as_list=True),
                   ends[0].get_tensor_value(as_list=True)[axis]])
  return result


def rewrite_same_dilations(g, ops):
  """tf2onnx rewriter: SpaceToBatchND -> conv -> BatchToSpaceND, as TF
  builds a dilated 'SAME' conv on an input of dynamic size, becomes one
  dilated conv with explicit pads.

  tf2onnx's own rewriter leaves this case alone (computed paddings), and
  its NCHW translation (Pad, SpaceToDepth, DepthToSpace, Slice, two
  transposes and an unfolded BatchNormalization per conv) took about 15% of
  onnxruntime's time for mobilenet_v2 (blocks 14-16 at output stride 16).
  """
  from tf2onnx.graph_matcher import GraphMatcher, OpTypePattern  # pylint: disable=g-import-not-at-top,g-multiple-import
  pattern = OpTypePattern("BatchToSpaceND", name="batch_to_space", inputs=[
      OpTypePattern("DepthwiseConv2dNative|Conv2D", name="conv", inputs=[
          OpTypePattern("SpaceToBatchND", name="space_to_batch", inputs=[
              "*", OpTypePattern("Const|ConstV2"), "*"]), "*"]),
      OpTypePattern("Const|ConstV2"), "*"])
  for match in list(GraphMatcher(pattern, allow_reorder=False).match_ops(ops)):
    space_to_batch = match.get_op("space_to_batch")
    conv = match.get_op("conv")
    batch_to_space = match.get_op("batch_to_space")
    block = space_to_batch.inputs[1].get_tensor_value(as_list=True)
    paddings = _same_paddings(space_to_batch.inputs[2])
    if (paddings is None or len(block) != 2 or
        batch_to_space.inputs[1].get_tensor_value(as_list=True) != block or
        conv.get_attr_value("padding") != b"VALID" or
        conv.get_attr_value("data_format") not in (None, b"NHWC") or
        conv.get_attr_value("strides") != [1, 1, 1, 1]):
      continue
    g.replace_inputs(conv, [space_to_batch.input[0], conv.input[1]])
    g.copy_shape(batch_to_space.output[0], conv.output[0])
    g.replace_all_inputs(batch_to_space.output[0], conv.output[0])
    conv.set_attr("dilations", [1, *block, 1])
    conv.set_attr("padding", "EXPLICIT")
    conv.set_attr("explicit_paddings",
                  [0, 0, *paddings[0], *paddings[1], 0, 0])
  return g.get_nodes()


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
