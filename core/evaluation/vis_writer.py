"""Writes the visualisation of a split, as official `research/deeplab/vis.py`.

For the i-th image of a split (0-based, in file order) it writes, under a
visualisation folder:

* `segmentation_results/%06d_image.png`: the image (RGB);
* `segmentation_results/%06d_prediction.png`: the prediction painted with a
  colormap (RGB, official `save_annotation(add_colormap=True)`);
* with `also_save_raw_predictions`, `raw_segmentation_results/<name>.png`:
  the class ids as a grayscale PNG, `<name>` being the basename of the
  example's stored filename (for Cityscapes `frankfurt_000000_000294`), and,
  for Cityscapes, trainIds converted to labelIds so that cityscapesscripts'
  evaluator (and the benchmark server) read them.

Images are run as official eval does: optionally resized to
`min_resize_value`/`max_resize_value` (the prediction is resized back with
nearest neighbours), then padded at the bottom and right with the mean
pixel to `crop_size` and batched; the prediction of the image region is
kept. With no `crop_size`, each image is run alone at its own size.
"""

import dataclasses
import io
import os
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.evaluation import eval_loop
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import multiscale
from deeplab.datasets import colormaps
from deeplab.datasets import preprocess

SEMANTIC_FOLDER = "segmentation_results"  # Official vis.py folder names.
RAW_FOLDER = "raw_segmentation_results"
IMAGE_FORMAT = "%06d_image"
PREDICTION_FORMAT = "%06d_prediction"

Example = Tuple[str, np.ndarray, np.ndarray]  # eval_loop.iter_examples.


@dataclasses.dataclass
class VisConfig:
  """Options of one visualisation pass (official vis.py flags).

  Attributes:
    vis_dir: Output folder (official `vis_logdir`).
    colormap_type: `pascal`, `cityscapes` or `ade20k`.
    also_save_raw_predictions: Also write the raw class-id PNGs.
    label_id_table: Optional uint8 [256] lookup applied to raw predictions
      (Cityscapes trainId -> labelId).
    crop_size: (height, width) canvas images are padded to, or None for
      each image at its own size.
    batch_size: Images per forward pass (with a crop_size).
    min_resize_value, max_resize_value, resize_factor: Official eval
      resize (optional; `preprocess.resize_to_range`).
    eval_scales, add_flipped_images: Multi-scale and flipped inference.
    mean_pixel: RGB padding, the model variant's `ModelVariant.mean_pixel`
      (what its preprocessing maps to 0), as evaluation pads.
  """
  vis_dir: str
  colormap_type: str = "pascal"
  also_save_raw_predictions: bool = False
  label_id_table: Optional[np.ndarray] = None
  crop_size: Optional[Tuple[int, int]] = (513, 513)
  batch_size: int = 1
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  eval_scales: Sequence[float] = (1.0,)
  add_flipped_images: bool = False
  mean_pixel: Sequence[float] = deeplab_layers.UNIT_RANGE_MEAN_RGB


def make_batch_predictor(model, config: VisConfig
                         ) -> Callable[[List[np.ndarray]], List[np.ndarray]]:
  """`predict(images) -> labels`, each int32 [H, W] at its image's size."""
  scales = multiscale.validate_scales(config.eval_scales)

  @tf.function(reduce_retracing=True)
  def run(images):
    labels, _, _ = multiscale.predict_labels(
        model, images, scales, config.add_flipped_images,
        with_probabilities=False)
    return labels

  def resized(image):
    if not (config.min_resize_value or config.max_resize_value):
      return tf.constant(image, tf.float32)
    return preprocess.resize_to_range(
        tf.constant(image, tf.float32), None, config.min_resize_value,
        config.max_resize_value, config.resize_factor)[0]

  def predict(images):
    inputs = [resized(image) for image in images]
    if config.crop_size is None:  # One image at its own size.
      batch = tf.stack(inputs)
    else:
      batch = tf.stack([_pad(x, config.crop_size, config.mean_pixel)
                        for x in inputs])
    labels = run(batch).numpy()
    outputs = []
    for image, x, label in zip(images, inputs, labels):
      label = label[:x.shape[0], :x.shape[1]]
      if label.shape != image.shape[:2]:
        # Official vis.py: nearest neighbour with align_corners.
        label = tf.raw_ops.ResizeNearestNeighbor(
            images=label[None, ..., None], size=image.shape[:2],
            align_corners=True).numpy()[0, ..., 0]
      outputs.append(label)
    return outputs

  return predict


def _pad(image: tf.Tensor, crop_size: Tuple[int, int],
         mean_pixel: Sequence[float]) -> tf.Tensor:
  """Pads at the bottom and right with the mean pixel, as eval does."""
  height, width = image.shape[:2]
  if height > crop_size[0] or width > crop_size[1]:
    raise ValueError(
        f"An image of {height}x{width} does not fit --vis_crop_size="
        f"{crop_size[0]},{crop_size[1]}; pass a larger --vis_crop_size, or "
        "--vis_crop_size= to run every image at its own size.")
  mean = tf.constant(mean_pixel, tf.float32, shape=[3])
  return tf.pad(image - mean, [[0, crop_size[0] - height],
                               [0, crop_size[1] - width], [0, 0]]) + mean


def _write_png(path: str, array: np.ndarray) -> None:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  io_utils.atomic_write_bytes(path, buffer.getvalue())


def _batches(examples: Iterable[Example], size: int):
  batch = []
  for example in examples:
    batch.append(example)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def raw_label_table(dataset_name: str) -> Optional[np.ndarray]:
  """The lookup applied to raw predictions of a dataset, or None.

  Cityscapes predictions are trainIds; its benchmark and cityscapesscripts
  score labelIds (official vis.py `_CITYSCAPES_TRAIN_ID_TO_EVAL_ID`).
  """
  if dataset_name == "cityscapes":
    return eval_loop.cityscapes_train_to_label_ids()
  return None


def raw_prediction_name(filename: str) -> str:
  """Official raw file name: the stored filename's basename + `.png`."""
  return os.path.basename(filename) + ".png"


def visualize_split(predict, examples: Iterable[Example], config: VisConfig,
                    num_images: Optional[int] = None) -> int:
  """Writes image, coloured prediction and raw prediction for every example.

  Args:
    predict: `predict(images) -> labels` (see `make_batch_predictor`).
    examples: (filename, uint8 image, label) triples in split order.
    config: The `VisConfig`.
    num_images: Expected count, for the progress log's ETA.

  Returns:
    The number of images written.
  """
  save_dir = os.path.join(config.vis_dir, SEMANTIC_FOLDER)
  raw_dir = os.path.join(config.vis_dir, RAW_FOLDER)
  os.makedirs(save_dir, exist_ok=True)
  os.makedirs(raw_dir, exist_ok=True)
  colormap = colormaps.get_colormap(config.colormap_type)
  batch_size = config.batch_size if config.crop_size else 1
  count, start = 0, time.time()
  for batch in _batches(examples, batch_size):
    labels = predict([image for _, image, _ in batch])
    for (filename, image, _), label in zip(batch, labels):
      _write_png(os.path.join(save_dir, IMAGE_FORMAT % count + ".png"), image)
      _write_png(os.path.join(save_dir, PREDICTION_FORMAT % count + ".png"),
                 colormaps.colorize_label(label, colormap))
      if config.also_save_raw_predictions:
        raw = label.astype(np.uint8)
        if config.label_id_table is not None:
          raw = config.label_id_table[raw]
        _write_png(os.path.join(raw_dir, raw_prediction_name(filename)), raw)
      count += 1
      if count % 50 == 0:
        _log_progress(count, start, num_images)
  _log_progress(count, start, num_images)
  return count


def _log_progress(count: int, start: float, num_images: Optional[int]):
  rate = count / max(time.time() - start, 1e-9)
  eta = (f", ETA {max(num_images - count, 0) / rate:.0f}s"
         if num_images else "")
  logging.info("Visualized %d images (%.2f images/s%s)", count, rate, eta)
