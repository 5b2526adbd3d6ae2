"""MNN export (extra `export`: the `mnn` wheel), float32 and uint8.

MNN's converter reads the ONNX graph of the shared inference function,
traced for a fixed input size: float32 pixels 0..255 [1, 3, H, W] in
(NCHW, the layout MNN's tools and image processing assume),
`semantic_predictions` int32 [1, H, W] out (and `probabilities` with
`with_probabilities`). `predictors.MnnPredictor` runs both.

uint8 (`deeplab_uint8.mnn`): weights and activations 8-bit, calibrated by
MNN's post-training quantizer (`mnnquant`, KL thresholds on the features,
per-channel max-abs weights) on the int8 TFLite calibration images
(`tflite_export.images_from_tfrecords`). MNN stores them as symmetric int8
(the name follows the issue's "uint8"): every convolution, the adds,
the pooling and the resizes run on int8; the input scaling, the two
concatenations, the image-pooling ReLU and the final argmax on float.
Two quirks of MNN 3.6.1 shape it:
* `MNN.tools.mnnquant` calls `_tools.mnnquant(src, dst, config)`, but the
  extension takes one argv list: it aborts with `std::length_error`
  (`PyList_Size` of a string is -1). We pass the list.
* The KL calibration segfaults when an upsampling (Interp) feeds an
  output (MNN's "debug" forward, a layout Raster after the Interp), so
  the quantizer sees the graph up to the logits, and the float graph's
  tail (the upsampling to the input size, argmax) is then attached to the
  quantized logits (`MNN.expr`, `Var.replace`). Only single-scale, unflipped
  inference has that one tail. (Its "EMA" method runs on the whole graph
  but quantizes weights per tensor: about 3 points more pixels disagree
  with Keras on the trained demo model.)

MNN's TFLite front end has no ARG_MAX, hence ONNX; MNN's own quantizer,
because its ONNX front end mis-shapes the first convolution of
onnxruntime's static QDQ model of our graph ("Compute Shape Error"). The
converter and quantizer run in a subprocess: MNN's `_tools` extension
carries its own ONNX protobuf descriptors, which abort a process that has
imported TensorFlow (MNN's runtime, `import MNN`, does not). Its Python
wrappers (`MNN.tools.*`) are not used: they pip-install a logging SDK and
report to a remote server.

Example:

  write_mnn(model, "/models/deeplab_float32.mnn", (513, 513))
  write_mnn(model, "/models/deeplab_uint8.mnn", (513, 513), "uint8",
            calibration_images=tflite_export.images_from_tfrecords(
                "/data/voc/tfrecord", "train", (513, 513), 100,
                mean_pixel=(127.5, 127.5, 127.5)))
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Optional, Sequence, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.export import onnx_export
from deeplab.core.export import saved_model

QUANTIZATIONS = ("float32", "uint8")


def require_mnn() -> None:
  """Raises a clear error when the `mnn` package is not installed."""
  if importlib.util.find_spec("_tools") is None:
    raise ValueError("MNN export needs the mnn package: pip install "
                     "'deeplab[export]'.")


def check_uint8_inference(scales: Sequence[float],
                          add_flipped_images: bool) -> None:
  """Raises unless the inference is single-scale and unflipped: the only
  graph with one float tail to re-attach (see the module docstring)."""
  if tuple(scales) != (1.0,) or add_flipped_images:
    raise ValueError("uint8 MNN export supports single-scale inference "
                     "only: --inference_scales=1.0, no "
                     "--add_flipped_images.")


def _run_tool(args: Sequence[str]) -> None:
  """Runs MNN's `mnnconvert` or `mnnquant` (`args[0]`, then its command
  line) in a fresh interpreter (see the module docstring)."""
  code = f"import sys, _tools; _tools.{args[0]}(sys.argv[1:])"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
  result = subprocess.run([sys.executable, "-c", code, *args],
                          capture_output=True, text=True, env=env,
                          check=False)
  if result.returncode:
    raise ValueError(f"MNN's {args[0]} failed (exit {result.returncode}): "
                     f"{(result.stderr or result.stdout)[-2000:]}")


def _write_calibration_images(images: Iterable[np.ndarray], folder: str,
                              size: Tuple[int, int]) -> int:
  """PNGs of the float [H, W, 3] canvases (0..255, rounded) for mnnquant;
  returns their number."""
  os.makedirs(folder)
  count = 0
  for count, image in enumerate(images, 1):
    if tuple(image.shape) != (*size, 3):
      raise ValueError(f"MNN calibration image {count} has shape "
                       f"{tuple(image.shape)}; expected {(*size, 3)}.")
    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    with open(os.path.join(folder, f"{count:06d}.png"), "wb") as f:
      f.write(tf.io.encode_png(pixels).numpy())
  if not count:
    raise ValueError("The calibration images of the uint8 MNN export are "
                     "empty.")
  return count


def _logits_before_upsampling(labels):
  """The MNN.expr variable read by the final upsampling (Interp) above
  `labels` (through the argmax, casts and layout conversions)."""
  var = labels
  while var.op_type != "Interp":
    if not var.inputs:
      raise ValueError("The MNN graph has no upsampling before "
                       f"{saved_model.LABELS!r}; cannot quantize it.")
    var = var.inputs[0]
  return var.inputs[0]


def _quantize(float_path: str, path: str, folder: str,
              images: Iterable[np.ndarray], size: Tuple[int, int],
              outputs: Sequence[str]) -> None:
  """Calibrates the float model up to its logits with mnnquant, attaches
  the float tail (see the module docstring) and writes `path`."""
  import MNN.expr as mnn_expr  # pylint: disable=g-import-not-at-top
  graph = mnn_expr.load_as_dict(float_path)
  logits = _logits_before_upsampling(graph[saved_model.LABELS])
  logits_path = os.path.join(folder, "logits.mnn")
  mnn_expr.save([logits], logits_path)
  image_dir = os.path.join(folder, "calibration")
  count = _write_calibration_images(images, image_dir, size)
  config = {"format": "RGB", "mean": [0.0] * 3, "normal": [1.0] * 3,
            "height": size[0], "width": size[1], "path": image_dir + "/",
            "used_image_num": count, "feature_quantize_method": "KL",
            "weight_quantize_method": "MAX_ABS"}
  config_path = os.path.join(folder, "quantization.json")
  io_utils.atomic_write_json(config_path, config)
  quantized_path = os.path.join(folder, "logits_uint8.mnn")
  logging.info("Calibrating the uint8 MNN model on %d images...", count)
  start = time.time()
  _run_tool(["mnnquant", logits_path, quantized_path, config_path])
  seconds = time.time() - start
  logging.info("MNN calibration done in %.0f s (%.2f images/s).", seconds,
               count / max(seconds, 1e-6))
  if not os.path.exists(quantized_path):
    raise ValueError(f"MNN's quantizer wrote no model for {path!r}.")
  quantized = mnn_expr.load_as_dict(quantized_path)
  if logits.name not in quantized:
    raise ValueError(f"MNN's quantized model lacks {logits.name!r}.")
  logits.replace(quantized[logits.name])
  mnn_expr.save([graph[name] for name in outputs], path)


def write_mnn(model: keras.Model, path: str, input_size: Tuple[int, int],
              quantization: str = "float32",
              scales: Sequence[float] = (1.0,),
              add_flipped_images: bool = False,
              with_probabilities: bool = False,
              calibration_images: Optional[Iterable[np.ndarray]] = None
              ) -> str:
  """Converts the inference function to `.mnn` and writes it (atomically).

  Args:
    model: The Keras DeepLab model.
    path: The `.mnn` file to write.
    input_size: (height, width) of the fixed input.
    quantization: `float32`, or `uint8` (calibrated, see the docstring).
    scales: Inference scales baked into the graph (uint8: only (1.0,)).
    add_flipped_images: Also average left-right flipped inputs (not uint8).
    with_probabilities: Also output `probabilities`.
    calibration_images: For uint8: float32 [H, W, 3] canvases of
      `input_size`, pixels 0..255 (`tflite_export.images_from_tfrecords`).

  Raises:
    ValueError: without the mnn package, for an unknown quantization, for
      uint8 without calibration images or with several scales or flips,
      or when MNN's converter or quantizer fails (its message).
  """
  require_mnn()
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"Unknown MNN quantization {quantization!r}; expected "
                     f"one of {list(QUANTIZATIONS)}.")
  if quantization == "uint8":
    if calibration_images is None:
      raise ValueError("uint8 MNN export needs calibration images "
                       "(--representative_dataset_dir).")
    check_uint8_inference(scales, add_flipped_images)
  height, width = (int(s) for s in input_size)
  proto = onnx_export.convert(
      model, tf.TensorSpec([1, height, width, 3], tf.float32, name="image"),
      scales, add_flipped_images, with_probabilities=with_probabilities,
      input_as_nchw=True)
  with tempfile.TemporaryDirectory() as folder:
    onnx_path = os.path.join(folder, "model.onnx")
    mnn_path = os.path.join(folder, "model.mnn")
    with open(onnx_path, "wb") as f:
      f.write(proto.SerializeToString())
    _run_tool(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
               "--MNNModel", mnn_path, "--bizCode", "deeplab"])
    if not os.path.exists(mnn_path):
      raise ValueError(f"MNN's converter wrote no model for {path!r}.")
    if quantization == "uint8":
      quantized_path = os.path.join(folder, "model_uint8.mnn")
      _quantize(mnn_path, quantized_path, folder, calibration_images,
                (height, width), [o.name for o in proto.graph.output])
      mnn_path = quantized_path
    with open(mnn_path, "rb") as f:
      io_utils.atomic_write_bytes(path, f.read())
  return path
