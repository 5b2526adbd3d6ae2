"""One interface over every model format, for evaluation and inference.

A `Predictor` maps one uint8 RGB image [H, W, 3] to labels [H, W] and
probabilities [H, W, C] at the image's size, whatever it runs: the Keras
model of a checkpoint, a SavedModel, a frozen graph, a TFLite, ONNX or
MNN file. `load_predictor(path)` picks the runner from the path. Exports
are lean by default (labels only, export_model.py without
--export_probabilities): their predictors return None for the
probabilities and have `has_probabilities` False.

Example:

  predictor = load_predictor("/models/deeplab/1/deeplab_int8.tflite")
  labels, probabilities = predictor(image)
"""

import os
from typing import Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from deeplab.core import checkpoints
from deeplab.core.export import frozen_graph
from deeplab.core.export import saved_model
from deeplab.core.export import tflite_export
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import model_variants
from deeplab.core.modeling import multiscale

Prediction = Tuple[np.ndarray, Optional[np.ndarray]]


class Predictor:
  """Base class: `predictor(image) -> (labels, probabilities)`.

  Attributes:
    name: Short name of the format, used in reports (`keras`, `saved_model`,
      `frozen_graph`, `tflite_float32`, `tflite_int8`, `onnx`, ...).
    has_probabilities: False for a lean export, whose probabilities are
      None.
  """

  name = "model"
  has_probabilities = True

  def __call__(self, image: np.ndarray) -> Prediction:
    """Segments uint8 [H, W, 3]; returns int32 [H, W] and float32 [H, W, C]
    (None when the export has no probabilities)."""
    raise NotImplementedError

  def predict_batch(self, images: Sequence[np.ndarray]) -> list:
    """Segments several images; formats that batch run them at once."""
    return [self(image) for image in images]

  def logits(self, image: np.ndarray) -> Optional[np.ndarray]:
    """Logits [H, W, C] when the format exposes them, else None."""
    del image
    return None


def _same_size(images) -> bool:
  return len({np.shape(image) for image in images}) == 1


def _split_batch(labels, probabilities) -> list:
  """[(labels, probabilities or None)] per image of a batch."""
  if probabilities is None:
    return [(image_labels, None) for image_labels in labels]
  return list(zip(labels, np.asarray(probabilities)))


class KerasPredictor(Predictor):
  """Runs a Keras model (e.g. restored from a checkpoint) eagerly."""

  name = "keras"

  def __init__(self, model: keras.Model, scales: Sequence[float] = (1.0,),
               add_flipped_images: bool = False):
    self._scales = multiscale.validate_scales(scales)
    self._flip = add_flipped_images

    @tf.function(reduce_retracing=True)
    def run(images):
      return saved_model.inference_outputs(model, images, self._scales,
                                        self._flip)

    self._run = run

  def _outputs(self, image):
    return self._run(tf.constant(np.asarray(image)[None], tf.uint8))

  def __call__(self, image):
    outputs = self._outputs(image)
    return (outputs["semantic_predictions"][0].numpy(),
            outputs["probabilities"][0].numpy())

  def predict_batch(self, images):
    if len(images) < 2 or not _same_size(images):
      return super().predict_batch(images)
    outputs = self._run(tf.constant(np.stack(images), tf.uint8))
    return list(zip(outputs["semantic_predictions"].numpy(),
                    outputs["probabilities"].numpy()))

  def logits(self, image):
    return self._outputs(image)["logits"][0].numpy()


class SavedModelPredictor(Predictor):
  """Runs the `serving_default` signature of an exported SavedModel."""

  name = "saved_model"

  def __init__(self, path: str):
    self._loaded = tf.saved_model.load(saved_model.resolve_saved_model_dir(path))
    self._signature = self._loaded.signatures[saved_model.SERVING_SIGNATURE]
    self.has_probabilities = (saved_model.PROBABILITIES in
                              self._signature.structured_outputs)

  def __call__(self, image):
    return self.predict_batch([image])[0]

  def predict_batch(self, images):
    if len(images) > 1 and not _same_size(images):
      return [self(image) for image in images]
    outputs = self._signature(ImageTensor=tf.constant(np.stack(images),
                                                      tf.uint8))
    return _split_batch(outputs[saved_model.LABELS].numpy(),
                        outputs.get(saved_model.PROBABILITIES))


class FrozenGraphPredictor(Predictor):
  """Runs a frozen GraphDef by its official tensor names."""

  name = "frozen_graph"

  def __init__(self, path: str):
    self._run = frozen_graph.load_frozen_graph(path)
    self.has_probabilities = self._run.has_probabilities

  def __call__(self, image):
    labels, probabilities = self._run(np.asarray(image, np.uint8)[None])
    return labels[0], None if probabilities is None else probabilities[0]


def _tflite_interpreter(path: str):
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:
    Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
  return Interpreter(model_path=path)


def _dequantize(values: np.ndarray, details) -> np.ndarray:
  """Float values of a (u)int8 tensor, by its quantization parameters."""
  if values.dtype not in (np.uint8, np.int8):
    return values.astype(np.float32)
  scale, zero_point = details["quantization"]
  return (values.astype(np.float32) - zero_point) * scale


def _resize_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
  """Labels [h, w] to [height, width], as official `resize_prediction`."""
  return tf.raw_ops.ResizeNearestNeighbor(
      images=labels[None, :, :, None], size=[height, width],
      align_corners=True)[0, :, :, 0].numpy()


class FixedSizePredictor(Predictor):
  """Base of the formats with a fixed input size (TFLite, MNN).

  An image is shrunk (if larger) and padded with the mean pixel to the
  model's input size. With probabilities in the model, those of the image
  region are resized back to the image's size (bilinear) and give the
  labels; a lean model's labels are cropped and, for a shrunk image,
  resized back (nearest). Subclasses set `height`, `width` and
  `has_probabilities`, and implement `_run`.
  """

  height = width = 0

  def __init__(self, mean_pixel: Sequence[float]):
    self._mean_pixel = tuple(mean_pixel)

  def _run(self, canvas: np.ndarray) -> Tuple[Optional[np.ndarray],
                                              Optional[np.ndarray]]:
    """float32 [H, W, 3] canvas -> (labels [H, W] or None, float
    probabilities [H, W, C] or None)."""
    raise NotImplementedError

  def __call__(self, image):
    height, width = image.shape[:2]
    canvas, (valid_height, valid_width) = tflite_export.fit_to_canvas(
        image, self.height, self.width, self._mean_pixel)
    labels, probabilities = self._run(canvas)
    if probabilities is None:
      labels = labels[:valid_height, :valid_width].astype(np.int32)
      if (valid_height, valid_width) != (height, width):
        labels = _resize_nearest(labels, height, width)
      return labels, None
    probabilities = probabilities[:valid_height, :valid_width]
    if (valid_height, valid_width) != (height, width):
      probabilities = deeplab_layers.resize_bilinear(
          probabilities[None], [height, width])[0].numpy()
    return (np.argmax(probabilities, -1).astype(np.int32),
            probabilities.astype(np.float32))


class TFLitePredictor(FixedSizePredictor):
  """Runs a `.tflite` model of fixed input size (see `FixedSizePredictor`).

  uint8 inputs and outputs are (de)quantized with the model's parameters.
  """

  def __init__(self, path: str,
               mean_pixel: Sequence[float] = deeplab_layers.UNIT_RANGE_MEAN_RGB):
    """`mean_pixel`: the padding, the model variant's
    `ModelVariant.mean_pixel` (default: that of the [-1, 1] variants)."""
    super().__init__(mean_pixel)
    self._interpreter = _tflite_interpreter(path)
    self._interpreter.allocate_tensors()
    self._input = self._interpreter.get_input_details()[0]
    self.height, self.width = (int(s) for s in self._input["shape"][1:3])
    outputs = self._interpreter.get_output_details()
    self._probabilities = next((o for o in outputs if len(o["shape"]) == 4),
                               None)
    self._labels = next((o for o in outputs if len(o["shape"]) == 3), None)
    self.has_probabilities = self._probabilities is not None
    self.quantized = self._input["dtype"] == np.uint8
    self.name = "tflite_int8" if self.quantized else "tflite"
    base = os.path.basename(path)
    for quantization in tflite_export.QUANTIZATIONS:
      if quantization in base:
        self.name = f"tflite_{quantization}"

  def _run(self, canvas):
    if self.quantized:
      scale, zero_point = self._input["quantization"]
      canvas = np.clip(np.round(canvas / scale + zero_point), 0, 255)
    self._interpreter.set_tensor(self._input["index"],
                                 canvas[None].astype(self._input["dtype"]))
    self._interpreter.invoke()
    if not self.has_probabilities:
      return self._interpreter.get_tensor(self._labels["index"])[0], None
    return None, _dequantize(self._interpreter.get_tensor(
        self._probabilities["index"])[0], self._probabilities)


class MnnPredictor(FixedSizePredictor):
  """Runs an `.mnn` model (`mnn_export`: float32 or calibrated uint8, NCHW
  float pixels in) of fixed input size on the CPU."""

  def __init__(self, path: str,
               mean_pixel: Sequence[float] = deeplab_layers.UNIT_RANGE_MEAN_RGB,
               num_threads: int = 2):
    super().__init__(mean_pixel)
    try:
      import MNN  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ValueError("Running MNN models needs the mnn package: pip "
                       "install 'deeplab[export]'.") from None
    self._mnn = MNN
    self._interpreter = MNN.Interpreter(path)
    self._session = self._interpreter.createSession(
        {"numThread": int(num_threads)})
    self._input = self._interpreter.getSessionInput(self._session)
    self.height, self.width = (int(s) for s in self._input.getShape()[2:4])
    self._outputs = self._interpreter.getSessionOutputAll(self._session)
    self.has_probabilities = saved_model.PROBABILITIES in self._outputs
    base = os.path.basename(path).lower()
    self.name = "mnn_uint8" if "uint8" in base else "mnn_float32"

  def _fetch(self, name: str) -> np.ndarray:
    output = self._outputs[name]
    # The converted graph keeps the ONNX (NHWC) shapes as declared: copy
    # in the tensor's own layout, no NCHW <-> NHWC conversion.
    host = self._mnn.Tensor(output, output.getDimensionType())
    output.copyToHostTensor(host)
    return np.array(host.getNumpyData())[0]

  def _run(self, canvas):
    self._input.copyFrom(self._mnn.Tensor(
        (1, 3, self.height, self.width), self._mnn.Halide_Type_Float,
        np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], np.float32),
        self._input.getDimensionType()))
    self._interpreter.runSession(self._session)
    if self.has_probabilities:
      return None, self._fetch(saved_model.PROBABILITIES)
    return self._fetch(saved_model.LABELS), None


class OnnxPredictor(Predictor):
  """Runs an ONNX model with onnxruntime (CPU), all graph optimisations on."""

  name = "onnx"

  def __init__(self, path: str):
    try:
      import onnxruntime  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ValueError("Running ONNX models needs onnxruntime: pip install "
                       "'deeplab[export]'.") from None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = (
        onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)
    self._session = onnxruntime.InferenceSession(
        path, options, providers=["CPUExecutionProvider"])
    self._input = self._session.get_inputs()[0].name
    self._outputs = [o.name for o in self._session.get_outputs()]
    self.has_probabilities = saved_model.PROBABILITIES in self._outputs

  def _run(self, image, names):
    return self._session.run(names, {self._input: np.asarray(
        image, np.uint8)[None]})

  def __call__(self, image):
    return self.predict_batch([image])[0]

  def predict_batch(self, images):
    if len(images) > 1 and not _same_size(images):
      return [self(image) for image in images]
    names = list(saved_model.output_keys(self.has_probabilities))
    outputs = self._session.run(
        names, {self._input: np.stack(images).astype(np.uint8)})
    return _split_batch(outputs[0], outputs[1] if len(outputs) > 1 else None)

  def logits(self, image):
    if saved_model.LOGITS not in self._outputs:
      return None
    return self._run(image, [saved_model.LOGITS])[0][0]


def exported_mean_pixel(path: str) -> Sequence[float]:
  """The padding of the fixed-size model at `path`: its variant's mean
  pixel, from the `model_config.json` that `export_model.py` writes beside
  it; that of the [-1, 1] variants for files exported without one."""
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.exists(os.path.join(folder, checkpoints.MODEL_CONFIG_FILE)):
    return deeplab_layers.UNIT_RANGE_MEAN_RGB
  config = checkpoints.read_model_config(folder)
  return model_variants.get_model_variant(config.model_variant).mean_pixel


def load_predictor(path: str,
                   mean_pixel: Optional[Sequence[float]] = None
                   ) -> Predictor:
  """A predictor for an exported model, chosen by its path.

  Args:
    path: A SavedModel folder (a version or its base folder), a frozen
      graph `.pb`, a `.tflite`, an `.onnx` or an `.mnn` file.
    mean_pixel: Padding of the fixed-size formats (TFLite, MNN); by default
      `exported_mean_pixel(path)`.

  Raises:
    FileNotFoundError: naming the path, when it does not exist.
    ValueError: naming the path, when its format is not recognised.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--model_path {path!r} does not exist.")
  if mean_pixel is None:
    mean_pixel = exported_mean_pixel(path)
  lower = path.lower()
  if os.path.isdir(path):
    return SavedModelPredictor(path)
  if lower.endswith(".tflite"):
    return TFLitePredictor(path, mean_pixel)
  if lower.endswith(".onnx"):
    return OnnxPredictor(path)
  if lower.endswith(".mnn"):
    return MnnPredictor(path, mean_pixel)
  if lower.endswith(".pb"):
    if os.path.basename(lower) == "saved_model.pb":
      return SavedModelPredictor(os.path.dirname(path))
    return FrozenGraphPredictor(path)
  raise ValueError(
      f"--model_path {path!r}: expected a SavedModel folder, a frozen graph "
      "'.pb', a '.tflite', an '.onnx' or an '.mnn' file.")
