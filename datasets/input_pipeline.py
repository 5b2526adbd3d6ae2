"""The tf.data input pipeline: TFRecord shards -> preprocessed batches.

`make_dataset(config)` yields `(features, labels)`:

  features["image"]     float32 [B, crop_h, crop_w, 3], values in [0, 255],
                        padded with `config.mean_pixel` (the model
                        variant's, which its preprocessing maps to 0)
  features["height"]    int32 [B], the original image height
  features["width"]     int32 [B], the original image width
  features["filename"]  string [B], the example key
  labels                int32 [B, crop_h, crop_w], the descriptor's ignore
                        label where padded

Training shuffles, repeats forever and drops the last partial batch (the
batch dimension is static). Evaluation reads the shards once, in file order,
and keeps the last partial batch.

When training preprocessing is scale/crop/flip only, the crop window is
drawn first and only the pixels under it are decoded and resampled
(`crop_window`: `preprocess`'s labels and padding, images within 0.1
of a grey level); shards are read by a
parallel interleave and every stage is autotuned.

Example:
  config = DataConfig(dataset="demo", dataset_dir="/data/demo/tfrecord",
                      split="train", batch_size=16, crop_size=(128, 128))
  dataset = make_dataset(config)
"""

from typing import Callable, Optional

import tensorflow as tf

from deeplab.core.config import AugmentParams
from deeplab.core.config import DataConfig
from deeplab.datasets import crop_window
from deeplab.datasets import data_descriptors
from deeplab.datasets import label_checks
from deeplab.datasets import preprocess
from deeplab.datasets import tfrecord_io

# Shards read concurrently while training.
_CYCLE_LENGTH = 4


def _shard_for_pipeline(files, input_context):
  """Splits the input across pipelines: by file when there are enough files,
  else by example (returns (files_dataset, shard_examples))."""
  files_ds = tf.data.Dataset.from_tensor_slices(files)
  if input_context is None or input_context.num_input_pipelines <= 1:
    return files_ds, False
  if len(files) >= input_context.num_input_pipelines:
    return files_ds.shard(input_context.num_input_pipelines,
                          input_context.input_pipeline_id), False
  return files_ds, True


def parse_fn(config: DataConfig, ignore_label: int,
             parse_example: Callable = tfrecord_io.parse_example) -> Callable:
  """`parse_example` followed by the label-range check of `config`."""

  def parse(serialized):
    example = parse_example(serialized)
    if config.num_classes:
      example["label"] = label_checks.check_label(
          example["label"], example["filename"], config.num_classes,
          ignore_label, config.split, config.out_of_range_labels)
    return example

  return parse


def read_shards(files_ds: tf.data.Dataset, files, config: DataConfig,
                interleave: bool) -> tf.data.Dataset:
  """The records of `files_ds`: interleaved, or one file after another."""
  tfrecord_io.note_opened(files)
  if config.skip_corrupt_records:
    tfrecord_io.log_corrupt_shards(files)
  read = lambda path: tfrecord_io.read_records(path,
                                               config.skip_corrupt_records)
  if not interleave:
    return files_ds.flat_map(read)
  return files_ds.interleave(
      read, cycle_length=min(len(files), _CYCLE_LENGTH),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=config.deterministic)


def explain_error(error: BaseException):
  """A one-line message for a data error raised while reading (out-of-range
  labels, a truncated shard), or None for any other error."""
  return (label_checks.user_message(error) or
          tfrecord_io.explain_read_error(error))


def make_dataset(
    config: DataConfig,
    input_context: Optional[tf.distribute.InputContext] = None
) -> tf.data.Dataset:
  """Builds the input pipeline described by `config`.

  Args:
    config: What to read (`dataset`, `dataset_dir`, `split`) and how to
      preprocess and batch it.
    input_context: Given by `strategy.distribute_datasets_from_function`;
      the dataset is then this pipeline's share, batched per replica.

  Returns:
    A tf.data.Dataset of (features, labels), see the module docstring.

  Raises:
    ValueError: for an unknown dataset (naming the known ones) or a bad
      config.
    FileNotFoundError: if the dataset folder or the split's shards are
      missing (naming them).
  """
  ignore_label = config.ignore_label
  if ignore_label is None:
    ignore_label = data_descriptors.get_dataset_descriptor(
        config.dataset).ignore_label
  augment_params = config.augment
  if augment_params == AugmentParams():
    augment_params = None  # Nothing to add: the official pipeline.
  files = tfrecord_io.list_shards(config.dataset_dir, config.split)
  batch_size = config.batch_size
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(config.batch_size)
  training = config.is_training
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  seed = config.seed + 1000 * pipeline_id if config.deterministic else None

  window_first = crop_window.applies(config, augment_params)
  dataset = _examples(config, files, input_context, seed, ignore_label,
                      window_first)
  prepare = _prepare_fn(config, ignore_label, augment_params, window_first)
  dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=config.deterministic or not training)
  dataset = dataset.batch(batch_size, drop_remainder=training)
  dataset = dataset.prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = config.deterministic or not training
  dataset = dataset.with_options(options)
  return dataset


def _examples(config: DataConfig, files, input_context, seed, ignore_label,
              window_first: bool) -> tf.data.Dataset:
  """This pipeline's parsed examples; shuffled, repeated and seeded to train.

  In training each element is `(example, seed)`: one stateless seed per
  example makes augmentation reproducible under parallel map when
  `deterministic`, and random otherwise.
  """
  training = config.is_training
  files_ds, shard_examples = _shard_for_pipeline(files, input_context)
  if training:
    files_ds = files_ds.shuffle(len(files), seed=seed)
  # Evaluation reads one file after another: the list order of the builder.
  dataset = read_shards(files_ds, files, config, interleave=training)
  if shard_examples:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)

  dataset = dataset.map(parse_fn(config, ignore_label,
                                 crop_window.parse_encoded if window_first
                                 else tfrecord_io.parse_example),
                        num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=config.deterministic or not training)
  if config.cache:
    dataset = dataset.cache()
  if training:
    dataset = dataset.shuffle(config.shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    dataset = tf.data.Dataset.zip((dataset, seeds))
  return dataset


def _prepare_fn(config: DataConfig, ignore_label: int,
                augment_params: Optional[AugmentParams], window_first: bool):
  """The map function from a parsed example to `(features, label)`."""
  crop_height, crop_width = (int(s) for s in config.crop_size)
  training = config.is_training

  def _prepare_window_first(example, example_seed):
    image, label, shape = crop_window.scale_crop_flip(
        example, crop_height, crop_width, config.min_scale_factor,
        config.max_scale_factor, config.scale_factor_step_size,
        ignore_label, config.flip, example_seed, config.mean_pixel)
    features = {"image": image, "height": shape[0], "width": shape[1],
                "filename": example["filename"]}
    return features, tf.squeeze(label, axis=-1)

  def _prepare(example, example_seed=None):
    image, label = preprocess.preprocess_image_and_label(
        example["image"], example["label"],
        crop_height=crop_height, crop_width=crop_width,
        min_resize_value=config.min_resize_value,
        max_resize_value=config.max_resize_value,
        resize_factor=config.resize_factor,
        min_scale_factor=config.min_scale_factor,
        max_scale_factor=config.max_scale_factor,
        scale_factor_step_size=config.scale_factor_step_size,
        ignore_label=ignore_label,
        is_training=training,
        flip=config.flip,
        seed=example_seed,
        image_name=example["filename"],
        augment_params=augment_params,
        mean_pixel=config.mean_pixel)
    features = {
        "image": image,
        "height": example["height"],
        "width": example["width"],
        "filename": example["filename"],
    }
    return features, tf.squeeze(label, axis=-1)

  return _prepare_window_first if window_first else _prepare


def make_input_fn(
    config: DataConfig
) -> Callable[[Optional[tf.distribute.InputContext]], tf.data.Dataset]:
  """Returns `input_fn(input_context)` for
  `strategy.distribute_datasets_from_function`."""

  def input_fn(input_context: Optional[tf.distribute.InputContext] = None):
    return make_dataset(config, input_context)

  return input_fn
