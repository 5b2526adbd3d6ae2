"""Configuration dataclasses: one per concern, built once at the edge.

The absl apps (`train.py`, `evaluate.py`, ...) turn their flags into these
dataclasses (see `deeplab/common_flags.py`) and pass them down. Library code
never reads flags. Field names follow the official research/deeplab flags
wherever a field means the same thing.
"""

import dataclasses
from typing import Optional, Sequence, Tuple


@dataclasses.dataclass
class ModelConfig:
  """What network to build.

  Attributes:
    model_variant: Key into the model-variant registry
      (`deeplab.core.model_variants`), e.g. `mobilenet_v2`.
    num_classes: Number of output classes, background included.
    output_stride: Ratio of input to backbone output resolution: 8, 16 or 32.
      Reached with atrous convolution in the last blocks.
    atrous_rates: Rates of the three atrous ASPP branches, e.g. (6, 12, 18) at
      OS16. Empty means "ASPP lite": only the 1x1 branch and image pooling.
    decoder_output_stride: Stride of the low-level feature that the v3+
      decoder fuses (4 in the paper). None disables the decoder.
    depth_multiplier: Width multiplier of MobileNet backbones.
    aspp_with_separable_conv: Use depthwise-separable atrous convs in ASPP.
    decoder_use_separable_conv: Use separable 3x3 convs in the decoder.
    add_image_level_feature: Add the image-pooling branch to ASPP.
    aspp_filters: Filters of every ASPP branch and of its projection.
    decoder_filters: Filters of the decoder's 3x3 convs.
    low_level_filters: Filters of the decoder's low-level projection (48).
    aspp_dropout_rate: Dropout after the ASPP projection (official keep 0.9).
    batch_norm_momentum: BatchNorm moving-average momentum (official decay
      0.9997; short runs from scratch want about 0.9).
    batch_norm_epsilon: BatchNorm epsilon (official 1e-3).
    weight_decay: L2 weight decay on conv kernels, in the official (slim)
      convention `weight_decay * sum(w**2) / 2`.
    sync_batch_norm: Synchronize BatchNorm statistics across replicas.
  """

  model_variant: str = "mobilenet_v2"
  num_classes: int = 21
  output_stride: int = 16
  atrous_rates: Tuple[int, ...] = ()
  decoder_output_stride: Optional[int] = 4
  depth_multiplier: float = 1.0
  aspp_with_separable_conv: bool = True
  decoder_use_separable_conv: bool = True
  add_image_level_feature: bool = True
  aspp_filters: int = 256
  decoder_filters: int = 256
  low_level_filters: int = 48
  aspp_dropout_rate: float = 0.1
  batch_norm_momentum: float = 0.9997
  batch_norm_epsilon: float = 1e-3
  weight_decay: float = 4e-5
  sync_batch_norm: bool = False

  def __post_init__(self):
    if self.output_stride not in (8, 16, 32):
      raise ValueError(
          f"--output_stride must be 8, 16 or 32, got {self.output_stride}.")
    if self.num_classes < 2:
      raise ValueError(
          f"--num_classes must be at least 2, got {self.num_classes}.")
    self.atrous_rates = tuple(int(r) for r in (self.atrous_rates or ()))
    if self.atrous_rates and len(self.atrous_rates) != 3:
      raise ValueError(
          "--atrous_rates takes three rates (e.g. 6,12,18 at output_stride "
          f"16) or none, got {list(self.atrous_rates)}.")
    if (self.decoder_output_stride is not None and
        self.decoder_output_stride >= self.output_stride):
      raise ValueError(
          f"--decoder_output_stride ({self.decoder_output_stride}) must be "
          f"smaller than --output_stride ({self.output_stride}).")


@dataclasses.dataclass
class DataConfig:
  """Where the data is and how it is preprocessed.

  Attributes:
    dataset: Name in the dataset registry (`deeplab.datasets.data_descriptors`).
    ignore_label: Label value to pad labels with; the registered dataset's
      when None.
    dataset_dir: Folder that holds the `{split}-*.tfrecord` shards.
    split: Split to read, e.g. `train` or `val`.
    batch_size: Global batch size (split across replicas).
    crop_size: (height, width) of training crops, or of the padded eval
      canvas, which must be at least the largest image.
    min_resize_value: Optional: resize so the short side is at least this.
    max_resize_value: Optional: resize so the long side is at most this.
    min_scale_factor: Lower bound of random scaling (training only).
    max_scale_factor: Upper bound of random scaling.
    scale_factor_step_size: Random scales are drawn on this grid (0 means a
      continuous range).
    flip: Random left-right flip with probability 0.5 (training only).
    is_training: Training (augmentation, shuffle, repeat) or evaluation.
    shuffle_buffer: Examples held in the shuffle buffer.
    deterministic: Make the input order reproducible.
    seed: Seed of shuffling and augmentation when deterministic.
    cache: Cache decoded examples in memory (small datasets).
  """

  dataset: str = "pascal_voc_seg"
  ignore_label: Optional[int] = None
  dataset_dir: str = ""
  split: str = "train"
  batch_size: int = 8
  crop_size: Tuple[int, int] = (513, 513)
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  min_scale_factor: float = 0.5
  max_scale_factor: float = 2.0
  scale_factor_step_size: float = 0.25
  flip: bool = True
  is_training: bool = True
  shuffle_buffer: int = 256
  deterministic: bool = False
  seed: int = 0
  cache: bool = False


@dataclasses.dataclass
class TrainConfig:
  """How to optimise, checkpoint and log.

  Attributes:
    train_logdir: Folder for checkpoints and TensorBoard summaries.
    training_number_of_steps: Total number of optimiser steps.
    optimizer: `momentum` (official default) or `adam`.
    base_learning_rate: Learning rate at step 0 (after slow start).
    learning_policy: `poly` or `step`.
    learning_power: Power of the poly policy.
    learning_rate_decay_step: Step of the step policy.
    learning_rate_decay_factor: Factor of the step policy.
    end_learning_rate: Floor of the poly policy.
    slow_start_step: Train this many steps at `slow_start_learning_rate`.
    slow_start_learning_rate: Learning rate during slow start.
    momentum: Momentum of the momentum optimiser.
    fine_tune_batch_norm: Update BatchNorm statistics and parameters.
    save_interval_steps: Save a checkpoint every this many steps.
    save_interval_secs: And at least every this many seconds.
    max_to_keep: Checkpoints kept in `train_logdir`.
    log_steps: Log (and write scalar summaries) every this many steps.
    image_summary_steps: Write image summaries every this many steps (0: off).
  """

  train_logdir: str = ""
  training_number_of_steps: int = 30000
  optimizer: str = "momentum"
  base_learning_rate: float = 0.007
  learning_policy: str = "poly"
  learning_power: float = 0.9
  learning_rate_decay_step: int = 2000
  learning_rate_decay_factor: float = 0.1
  end_learning_rate: float = 0.0
  slow_start_step: int = 0
  slow_start_learning_rate: float = 1e-4
  momentum: float = 0.9
  fine_tune_batch_norm: bool = True
  save_interval_steps: int = 500
  save_interval_secs: float = 600.0
  max_to_keep: int = 5
  log_steps: int = 50
  image_summary_steps: int = 500


@dataclasses.dataclass
class EvalConfig:
  """How to evaluate.

  Attributes:
    eval_logdir: Folder for `metrics.json` and eval summaries.
    checkpoint_dir: Folder of checkpoints (a train_logdir) to evaluate.
    max_number_of_evaluations: 1 evaluates the latest checkpoint once; 0
      keeps watching `checkpoint_dir` for new ones.
    eval_interval_secs: Poll interval while watching.
  """

  eval_logdir: str = ""
  checkpoint_dir: str = ""
  max_number_of_evaluations: int = 1
  eval_interval_secs: float = 60.0


def parse_int_list(value: Optional[Sequence], flag_name: str) -> Tuple[int, ...]:
  """Parses `[513, 513]`, `["513", "513"]` or `"513,513"` into ints.

  Args:
    value: The flag's value.
    flag_name: Used in the error message.

  Returns:
    A tuple of ints (empty for None or an empty value).

  Raises:
    ValueError: naming the flag, if an entry is not an integer.
  """
  if value is None:
    return ()
  if isinstance(value, str):
    value = [v for v in value.split(",") if v.strip()]
  try:
    return tuple(int(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(
        f"--{flag_name} expects comma-separated integers, got {value!r}."
    ) from None
