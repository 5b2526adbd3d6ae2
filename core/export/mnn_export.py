"""MNN export (extra `export`: the `mnn` wheel), float32.

MNN's converter reads the ONNX graph of the shared inference function,
traced for a fixed input size: float32 pixels 0..255 [1, 3, H, W] in
(NCHW, the layout MNN's tools and image processing assume),
`semantic_predictions` int32 [1, H, W] out (and `probabilities` with
`with_probabilities`). `predictors.MnnPredictor` runs it.

No uint8 model yet: MNN 3.6.1's post-training quantizer (`mnnquant`)
aborts on this graph (`std::length_error`), even on a logits-only NCHW
export calibrated on plain RGB images.

MNN's TFLite front end has no ARG_MAX, hence ONNX. The converter runs
in a subprocess: MNN's `_tools` extension carries its own
ONNX protobuf descriptors, which abort a process that has imported
TensorFlow (MNN's runtime, `import MNN`, does not). Its Python wrappers (`MNN.tools.mnnconvert`) are not used:
they pip-install a logging SDK and report to a remote server.

Example:

  write_mnn(model, "/models/deeplab_float32.mnn", (513, 513))
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from typing import Sequence, Tuple

import keras
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.export import onnx_export

QUANTIZATIONS = ("float32",)


def require_mnn() -> None:
  """Raises a clear error when the `mnn` package is not installed."""
  if importlib.util.find_spec("_tools") is None:
    raise ValueError("MNN export needs the mnn package: pip install "
                     "'deeplab[export]'.")


def _convert(args: Sequence[str]) -> None:
  """Runs MNN's converter in a fresh interpreter (see the docstring)."""
  code = "import sys, _tools; _tools.mnnconvert(sys.argv[1:])"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
  result = subprocess.run([sys.executable, "-c", code, *args],
                          capture_output=True, text=True, env=env,
                          check=False)
  if result.returncode:
    raise ValueError(f"MNN conversion failed: "
                     f"{(result.stderr or result.stdout)[-2000:]}")


def write_mnn(model: keras.Model, path: str, input_size: Tuple[int, int],
              quantization: str = "float32",
              scales: Sequence[float] = (1.0,),
              add_flipped_images: bool = False,
              with_probabilities: bool = False) -> str:
  """Converts the inference function to `.mnn` and writes it (atomically).

  Args:
    model: The Keras DeepLab model.
    path: The `.mnn` file to write.
    input_size: (height, width) of the fixed input.
    quantization: `float32` (the only one, see the module docstring).
    scales: Inference scales baked into the graph.
    add_flipped_images: Also average left-right flipped inputs.
    with_probabilities: Also output `probabilities`.

  Raises:
    ValueError: without the mnn package, for an unknown quantization, or
      when MNN's converter fails (its message).
  """
  require_mnn()
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"Unknown MNN quantization {quantization!r}; expected "
                     f"one of {list(QUANTIZATIONS)}.")
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
    _convert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
              "--MNNModel", mnn_path, "--bizCode", "deeplab"])
    if not os.path.exists(mnn_path):
      raise ValueError(f"MNN's converter wrote no model for {path!r}.")
    with open(mnn_path, "rb") as f:
      io_utils.atomic_write_bytes(path, f.read())
  return path
