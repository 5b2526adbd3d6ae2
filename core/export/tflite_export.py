"""TFLite export: float32, float16 and full-integer int8.

The converted graph is the frozen inference function of
`core.frozen_graph` (pre-processing, network, multi-scale averaging and
the argmax inside), traced for a fixed input size: TFLite wants static
shapes, and full-integer quantization needs them. Input: pixels
[1, H, W, 3] (float32 0..255 for float models; uint8 for int8, whose input
scale is 1). Output: `semantic_predictions` int32 [1, H, W]; with
`with_probabilities`, also `probabilities` [1, H, W, C] (for int8:
uint8 probabilities only, as before the lean graph).

The lean int8 graph is integer from end to end: uint8 pixels, int8
preprocessing, convolutions, resizes and ARG_MAX (TFLite's kernels take
int8), int32 labels out, so no DEQUANTIZE/QUANTIZE float round trip is
left; int8 probabilities would need a uint8 interface, which an int32
argmax cannot share, hence probabilities alone there.

Converting a plain `tf.Module` SavedModel gives an empty model that outputs
NaN (see TRAPS.md), hence the frozen concrete function.

Example:

  data = convert(model, (513, 513), "int8",
                 representative_images=images_from_tfrecords(
                     dir, "train", (513, 513), mean_pixel=variant.mean_pixel))
"""

from typing import Iterable, Optional, Sequence, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab.core.export import frozen_graph
from deeplab.core.export import saved_model
from deeplab.core.modeling import quantize
from deeplab.datasets import tfrecord_io

QUANTIZATIONS = ("float32", "float16", "int8")
def fit_to_canvas(image: np.ndarray, height: int, width: int,
                  pad_value: Sequence[float]) -> Tuple[np.ndarray, Tuple]:
  """Shrinks (keeping the aspect ratio) and pads an image to height x width.

  Args:
    image: [H, W, 3] pixels in 0..255.
    height: Canvas height.
    width: Canvas width.
    pad_value: RGB padding: the model variant's `ModelVariant.mean_pixel`,
      which the model's preprocessing maps to 0.

  Returns:
    (float32 [height, width, 3] canvas, (valid_height, valid_width)), the
    region of the canvas that holds the image.
  """
  image = np.asarray(image, np.float32)
  scale = min(1.0, height / image.shape[0], width / image.shape[1])
  if scale < 1.0:
    size = (max(1, int(image.shape[0] * scale)),
            max(1, int(image.shape[1] * scale)))
    image = tf.image.resize(image, size, method="bilinear").numpy()
  canvas = np.empty((height, width, 3), np.float32)
  canvas[:] = np.asarray(pad_value, np.float32)
  canvas[:image.shape[0], :image.shape[1]] = image
  return canvas, image.shape[:2]


def images_from_tfrecords(dataset_dir: str, split: str,
                          size: Tuple[int, int],
                          max_images: int = 100, *,
                          mean_pixel: Sequence[float]
                          ) -> Iterable[np.ndarray]:
  """Yields up to `max_images` canvases of `size` from a TFRecord split.

  Used as the representative dataset of int8 quantization; images are
  padded with `mean_pixel` (the model variant's `ModelVariant.mean_pixel`;
  required).

  Raises:
    FileNotFoundError: naming the folder or split, when it has no shards.
  """
  files = tfrecord_io.list_shards(dataset_dir, split)
  dataset = tf.data.TFRecordDataset(files).map(tfrecord_io.parse_example)
  for example in dataset.take(max_images):
    yield fit_to_canvas(example["image"].numpy(), *size, mean_pixel)[0]


def _use_learned_ranges(converter: tf.lite.TFLiteConverter) -> None:
  """int8 from a quantization-aware-trained model: the converter reads
  every range from its fake-quant ops (`core/modeling/quantize.py`), so no
  calibration images. `supported_ops` stays unset: TF 2.21 then demands a
  representative dataset before it looks at the graph; the fake-quant ops
  cover every tensor, so the graph comes out full-integer anyway (tested
  by tests/core/export/test_qat_tflite.py)."""
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.inference_input_type = tf.uint8
  converter.inference_output_type = tf.uint8


def convert(model: keras.Model, input_size: Tuple[int, int],
            quantization: str = "float32",
            representative_images: Optional[Iterable[np.ndarray]] = None,
            scales: Sequence[float] = (1.0,),
            add_flipped_images: bool = False,
            with_probabilities: bool = False) -> bytes:
  """Converts the inference function to a TFLite flatbuffer.

  Args:
    model: The Keras DeepLab model.
    input_size: (height, width) of the model's fixed input.
    quantization: `float32`, `float16` (weights stored as float16) or
      `int8` (full integer, uint8 input, int32 labels or uint8
      probabilities out).
    representative_images: float32 [H, W, 3] pixel arrays (0..255) for
      int8 calibration; required for int8, unless `model` is
      quantization-aware trained (`quantize.is_quantized`).
    scales: Inference scales baked into the graph.
    add_flipped_images: Also average left-right flipped inputs.
    with_probabilities: Output probabilities (see the module docstring).

  Returns:
    The `.tflite` bytes.

  Raises:
    ValueError: for an unknown quantization or int8 without images.
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"Unknown TFLite quantization {quantization!r}; "
                     f"expected one of {list(QUANTIZATIONS)}.")
  height, width = (int(s) for s in input_size)
  outputs = saved_model.output_keys(with_probabilities)
  if quantization == "int8" and with_probabilities:
    outputs = (saved_model.PROBABILITIES,)
  function = frozen_graph.frozen_function(
      model, tf.TensorSpec([1, height, width, 3], tf.float32, name="image"),
      scales, add_flipped_images, output_keys=outputs)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
  if quantization == "float16":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  elif quantization == "int8" and quantize.is_quantized(model):
    _use_learned_ranges(converter)
  elif quantization == "int8":
    if representative_images is None:
      raise ValueError("int8 TFLite export needs a representative dataset "
                       "(--representative_dataset_dir).")
    images = list(representative_images)
    if not images:
      raise ValueError("The representative dataset for int8 is empty.")

    def representative_dataset():
      for image in images:
        yield [np.asarray(image, np.float32)[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    if with_probabilities:
      converter.inference_output_type = tf.uint8
  data = converter.convert()
  logging.info("Converted TFLite %s model: %.1f MB", quantization,
               len(data) / 2**20)
  return data
