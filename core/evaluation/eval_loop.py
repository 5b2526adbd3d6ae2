"""Scores any `Predictor` (checkpoint, SavedModel, TFLite, ONNX) on a split.

Every image is segmented at its own full size (no crop limit), its confusion
matrix is computed on device with `metrics.confusion_matrix_update` and
summed; all figures come from that one matrix. Optionally writes palette
PNG predictions, overlays, and Cityscapes labelId PNGs that the official
cityscapesscripts evaluator scores.

Example:

  results = evaluate_predictor(load_predictor("model.tflite"),
                               iter_examples("/data/tfrecord", "val"),
                               num_classes=21, ignore_label=255)
"""

import io
import os
import time
from typing import Iterable, Iterator, Optional, Tuple

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from deeplab.core import io_utils
from deeplab.core.evaluation import metrics as metrics_lib
from deeplab.datasets import colormaps
from deeplab.datasets import input_pipeline
from deeplab.datasets import preprocess
from deeplab.datasets import tfrecord_io

Example = Tuple[str, np.ndarray, np.ndarray]


def iter_examples(dataset_dir: str, split: str,
                  max_images: Optional[int] = None,
                  data_config=None) -> Iterator[Example]:
  """Yields (filename, uint8 image [H, W, 3], label [H, W]) in file order.

  Args:
    dataset_dir: Folder of the shards.
    split: Split to read.
    max_images: Stop after this many.
    data_config: Optional `DataConfig` whose `num_classes`,
      `out_of_range_labels` and `skip_corrupt_records` check what is read
      (`input_pipeline.parse_fn`).

  Raises:
    FileNotFoundError: naming the folder or split, when it has no shards.
  """
  files = tfrecord_io.list_shards(dataset_dir, split)
  if data_config is None:
    dataset = tf.data.TFRecordDataset(files).map(tfrecord_io.parse_example)
  else:
    dataset = input_pipeline.read_shards(
        tf.data.Dataset.from_tensor_slices(files), files, data_config,
        interleave=False)
    ignore_label = (255 if data_config.ignore_label is None
                    else data_config.ignore_label)
    dataset = dataset.map(input_pipeline.parse_fn(data_config, ignore_label))
  if max_images:
    dataset = dataset.take(max_images)
  for example in dataset:
    yield (example["filename"].numpy().decode(), example["image"].numpy(),
           example["label"].numpy()[..., 0])


def full_image_input_fn(data_config):
  """Eval `input_fn` of whole, unpadded images at batch size 1.

  For images of any size (Cityscapes 1024x2048) without an eval canvas;
  `min_resize_value`/`max_resize_value` (and `resize_factor`) still apply.
  """

  def _prepare(example):
    image = tf.cast(example["image"], tf.float32)
    label = tf.cast(example["label"], tf.int32)
    if data_config.min_resize_value or data_config.max_resize_value:
      image, label = preprocess.resize_to_range(
          image, label, data_config.min_resize_value,
          data_config.max_resize_value, data_config.resize_factor)
    features = {"image": image, "height": example["height"],
                "width": example["width"], "filename": example["filename"]}
    return features, label[..., 0]

  def input_fn(input_context=None):
    files = tfrecord_io.list_shards(data_config.dataset_dir, data_config.split)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
      dataset = dataset.shard(input_context.num_input_pipelines,
                              input_context.input_pipeline_id)
    dataset = input_pipeline.read_shards(dataset, files, data_config,
                                         interleave=False)
    ignore_label = (255 if data_config.ignore_label is None
                    else data_config.ignore_label)
    dataset = dataset.map(input_pipeline.parse_fn(
        data_config, ignore_label)).map(_prepare)
    return dataset.batch(1).prefetch(2)

  return input_fn


def _png_bytes(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()


def cityscapes_train_to_label_ids() -> np.ndarray:
  """uint8 [256] lookup table: Cityscapes trainId -> labelId.

  cityscapesscripts' evaluator scores labelIds (0..33), not trainIds.
  Unknown ids (255 included) map to 0 (`unlabeled`).
  """
  from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
  table = np.zeros(256, np.uint8)
  for label in cs_labels.labels:
    if 0 <= label.trainId < 255 and not label.ignoreInEval:
      table[label.trainId] = label.id
  return table


def cityscapes_prediction_name(filename: str) -> str:
  """`frankfurt_000000_000294[_leftImg8bit]` -> `..._leftImg8bit.png`.

  cityscapesscripts finds a prediction by its `city_seq_frame` prefix.
  """
  stem = os.path.splitext(os.path.basename(filename))[0]
  if not stem.endswith("_leftImg8bit"):
    stem += "_leftImg8bit"
  return stem + ".png"


def evaluate_predictor(predictor,
                       examples: Iterable[Example],
                       num_classes: int,
                       ignore_label: int,
                       vis_dir: Optional[str] = None,
                       colormap: Optional[np.ndarray] = None,
                       cityscapes_results_dir: Optional[str] = None,
                       num_images: Optional[int] = None) -> dict:
  """Segments every example and scores the predictions.

  Args:
    predictor: `predictor(image) -> (labels, probabilities)`.
    examples: (filename, image, label) triples, e.g. `iter_examples(...)`.
    num_classes: Number of classes.
    ignore_label: Ground-truth value that is not scored.
    vis_dir: If set, writes `<name>.png` (palette labels) and
      `<name>_overlay.png` for every image.
    colormap: Colours for `vis_dir` (VOC's palette when None).
    cityscapes_results_dir: If set, writes each prediction as a Cityscapes
      labelId PNG `<city>_<seq>_<frame>_leftImg8bit.png`.
    num_images: Expected count, for the progress log's ETA.

  Returns:
    `metrics_from_confusion_matrix` plus `num_images` and
    `confusion_matrix`.

  Raises:
    ValueError: when there are no examples.
  """
  if colormap is None:
    colormap = colormaps.create_pascal_label_colormap()
  label_ids = (cityscapes_train_to_label_ids()
               if cityscapes_results_dir else None)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  count = 0
  start = time.time()
  for filename, image, label in examples:
    labels, _ = predictor(image)
    if labels.shape != label.shape:
      raise ValueError(
          f"{predictor.name} predicted {labels.shape} for {filename!r}, whose "
          f"label is {label.shape}.")
    confusion += metrics_lib.confusion_matrix_update(
        label, labels, num_classes, ignore_label).numpy()
    count += 1
    stem = os.path.splitext(os.path.basename(filename))[0] or f"{count:06d}"
    if vis_dir:
      io_utils.atomic_write_bytes(os.path.join(vis_dir, stem + ".png"),
                                  _png_bytes(colormaps.palette_png(labels, colormap)))
      io_utils.atomic_write_bytes(
          os.path.join(vis_dir, stem + "_overlay.png"),
          _png_bytes(Image.fromarray(
              colormaps.overlay(image, labels, colormap))))
    if cityscapes_results_dir:
      io_utils.atomic_write_bytes(
          os.path.join(cityscapes_results_dir,
                       cityscapes_prediction_name(filename)),
          _png_bytes(Image.fromarray(label_ids[labels.astype(np.uint8)])))
    if count % 50 == 0:
      rate = count / max(time.time() - start, 1e-9)
      eta = (f", ETA {(num_images - count) / rate:.0f}s"
             if num_images else "")
      logging.info("%s: %d images (%.2f images/s%s)", predictor.name, count,
                   rate, eta)
  if count == 0:
    raise ValueError("The eval split yielded no images.")
  results = metrics_lib.metrics_from_confusion_matrix(confusion)
  results.update(num_images=count, confusion_matrix=confusion.tolist())
  logging.info("%s: mIoU %.4f on %d images in %.1fs", predictor.name,
               results["miou"], count, time.time() - start)
  return results
