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
      (`deeplab.core.modeling.model_variants`), e.g. `mobilenet_v2`.
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
    multi_grid: Unit rates of the last backbone block (official
      `--multi_grid`, e.g. (1, 2, 4)); None takes the variant's default.
    head: `aspp` (ASPP + optional v3+ decoder, official) or `lr_aspp`
      (Lite R-ASPP of MobileNetV3, fed by the backbone's final feature and
      its stride-`decoder_output_stride` endpoint, default 8).
    image_pooling_crop_size: (height, width): ASPP image pooling averages
      over a window of `(crop - 1) // output_stride + 1` feature pixels
      instead of globally (official flag).
    image_pooling_stride: Stride of that window (official flag).
    aspp_with_concat_projection: Project the ASPP concatenation.
    aspp_with_squeeze_and_excitation: Image pooling gates ASPP instead of
      being concatenated (MobileNetV3 head).
    image_se_uses_qsigmoid: That gate is a hard sigmoid.
    aspp_branches: Custom ASPP branches (see `aspp.parse_branches`),
      replacing atrous_rates / aspp_with_separable_conv /
      add_image_level_feature.
    decoder_use_sum_merge: Sum-merge decoder (MobileNetV3 head).
    decoder_output_is_logits: The decoder's output is the logits (its
      filters are num_classes; no separate logits layer).
    use_bounded_activation: ReLU6 instead of ReLU in the head and the
      ResNet and Xception backbones (official flag, for quantization).
    quant_friendly: Quantization-friendly separable convs (no BN or
      activation after depthwise convs, ReLU instead of ReLU6) in the
      MobileNet backbones and the head.
    boundary_refinement: Add a boundary-refinement block on the logits.
    aux_head: Add an auxiliary head (`core/modeling/heads/aux_head.py`, PSPNet-style deep
      supervision) on the variant's `aux_endpoint`; the model then returns
      `[logits, aux_logits]`. For training only (`train.py` turns it on
      with `--aux_loss_weight > 0`); evaluation, export and inference
      build without it and still restore its checkpoints.
    aux_head_filters: Channels of the auxiliary head's 3x3 conv.
    aux_head_dropout_rate: Dropout before the auxiliary classifier.
    backbone_initializer: Keras initializer name for the conv kernels of
      the official backbones (mobilenet_v2/v3, xception, resnet_v1); empty
      keeps each backbone's official initializer. Matters only when
      training from scratch (e.g. `variance_scaling`, which learns faster
      than slim's truncated normal there, see docs/benchmarks.md).
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
  multi_grid: Optional[Tuple[int, ...]] = None
  head: str = "aspp"
  image_pooling_crop_size: Optional[Tuple[int, int]] = None
  image_pooling_stride: Tuple[int, int] = (1, 1)
  aspp_with_concat_projection: bool = True
  aspp_with_squeeze_and_excitation: bool = False
  image_se_uses_qsigmoid: bool = False
  aspp_branches: Optional[Tuple[dict, ...]] = None
  decoder_use_sum_merge: bool = False
  decoder_output_is_logits: bool = False
  use_bounded_activation: bool = False
  quant_friendly: bool = False
  boundary_refinement: bool = False
  aux_head: bool = False
  aux_head_filters: int = 256
  aux_head_dropout_rate: float = 0.1
  backbone_initializer: str = ""

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
    if self.multi_grid is not None:
      self.multi_grid = tuple(int(r) for r in self.multi_grid)
      if len(self.multi_grid) != 3 or min(self.multi_grid) < 1:
        raise ValueError(
            "--multi_grid takes three positive rates (e.g. 1,2,4), got "
            f"{list(self.multi_grid)}.")
    if self.head not in ("aspp", "lr_aspp"):
      raise ValueError(f"--head must be aspp or lr_aspp, got {self.head!r}.")
    if self.image_pooling_crop_size is not None:
      self.image_pooling_crop_size = tuple(
          int(v) for v in self.image_pooling_crop_size)
      if len(self.image_pooling_crop_size) != 2:
        raise ValueError("--image_pooling_crop_size takes 'height,width', got "
                         f"{list(self.image_pooling_crop_size)}.")
    self.image_pooling_stride = tuple(int(v) for v in self.image_pooling_stride)
    if len(self.image_pooling_stride) != 2 or min(self.image_pooling_stride) < 1:
      raise ValueError("--image_pooling_stride takes two positive integers, "
                       f"got {list(self.image_pooling_stride)}.")
    if self.decoder_output_is_logits and self.decoder_output_stride is None:
      raise ValueError("--decoder_output_is_logits needs "
                       "--decoder_output_stride.")
    if (self.decoder_output_stride is not None and
        self.decoder_output_stride >= self.output_stride):
      raise ValueError(
          f"--decoder_output_stride ({self.decoder_output_stride}) must be "
          f"smaller than --output_stride ({self.output_stride}).")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  """Training augmentations beyond official scale/crop/flip.

  Applied by `deeplab.datasets.augment`; the zero defaults apply nothing, so
  the pipeline is then the official one.

  Attributes:
    max_rotation_degrees: Largest rotation angle (0: off).
    brightness_max_delta: Brightness shift, as a fraction of 255.
    contrast_max_delta: Contrast factor drawn in [1 - d, 1 + d].
    saturation_max_delta: Saturation factor drawn in [1 - d, 1 + d].
    hue_max_delta: Hue shift in [-d, d] (fraction of a turn, <= 0.5).
    blur_probability: Probability of a Gaussian blur.
    blur_max_sigma: Largest blur sigma, in pixels.
    noise_stddev: Standard deviation of additive noise, in pixel units.
    gridmask_probability: Probability of GridMask.
    gridmask_ratio: Side of a masked square as a fraction of the period.
    gridmask_min_period: Smallest grid period d, in pixels.
    gridmask_max_period: Largest grid period d, in pixels.
  """

  max_rotation_degrees: float = 0.
  brightness_max_delta: float = 0.
  contrast_max_delta: float = 0.
  saturation_max_delta: float = 0.
  hue_max_delta: float = 0.
  blur_probability: float = 0.
  blur_max_sigma: float = 1.5
  noise_stddev: float = 0.
  gridmask_probability: float = 0.
  gridmask_ratio: float = 0.5
  gridmask_min_period: int = 32
  gridmask_max_period: int = 128

  def __post_init__(self):
    checks = [
        ("max_rotation_degrees", 0 <= self.max_rotation_degrees <= 180),
        ("brightness_max_delta", 0 <= self.brightness_max_delta <= 1),
        ("contrast_max_delta", 0 <= self.contrast_max_delta < 1),
        ("saturation_max_delta", 0 <= self.saturation_max_delta < 1),
        ("hue_max_delta", 0 <= self.hue_max_delta <= 0.5),
        ("blur_probability", 0 <= self.blur_probability <= 1),
        ("blur_max_sigma", self.blur_max_sigma > 0),
        ("noise_stddev", self.noise_stddev >= 0),
        ("gridmask_probability", 0 <= self.gridmask_probability <= 1),
        ("gridmask_ratio", 0 < self.gridmask_ratio < 1),
        ("gridmask_min_period",
         1 <= self.gridmask_min_period <= self.gridmask_max_period),
    ]
    for name, ok in checks:
      if not ok:
        raise ValueError(f"--{name}={getattr(self, name)} is out of range.")

  @property
  def any_photometric(self) -> bool:
    return bool(self.brightness_max_delta or self.contrast_max_delta or
                self.saturation_max_delta or self.hue_max_delta or
                self.blur_probability or self.noise_stddev)


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
    augment: Extra training augmentations beyond official scale/crop/flip,
      all off by default.
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
  augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)


@dataclasses.dataclass
class TrainConfig:
  """How to optimise, checkpoint and log.

  Attributes:
    train_logdir: Folder for checkpoints and TensorBoard summaries.
    training_number_of_steps: Total number of optimiser steps.
    optimizer: `momentum` (official default), `adam`, `adamw` or `rmsprop`.
    base_learning_rate: Learning rate at step 0 (after slow start).
    learning_policy: `poly`, `step`, `exponential`, `cosine` or
      `piecewise`.
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
    learning_rate_boundaries: Steps where the `piecewise` policy changes.
    learning_rate_values: Rates of the `piecewise` policy (one more).
    warmup_steps: Linear warmup length (0: none).
    warmup_learning_rate: Rate at the start of the warmup.
    adamw_weight_decay: Decoupled weight decay of `adamw`, on kernels only.
    label_weights: Per-class loss weights (official `label_weights`).
    class_weighting: `none`, `balanced` or `median_frequency` (computed from
      the training split's labels) or `adaptive` (running frequencies).
    top_k_percent_pixels: Hard-pixel mining fraction (1.0: all pixels).
    hard_example_mining_step: Steps over which mining ramps in.
    label_smoothing: Label smoothing of the cross-entropy targets.
    focal_gamma: Focal-loss exponent (0: plain cross-entropy).
    focal_alpha: Focal-loss balance factor.
    aux_loss_weight: Weight of the auxiliary head's loss (needs a model
      built with `ModelConfig.aux_head`); 0: no auxiliary loss.
    tf_initial_checkpoint: Checkpoint (or train_logdir) to start from when
      `train_logdir` has no checkpoint yet.
    initialize_last_layer: Also load the last layers from it.
    last_layers_contain_logits_only: Last layers are the logits only (else
      ASPP, decoder and logits).
    last_layer_gradient_multiplier: Gradient multiplier of the last layers
      (biases get twice it, as official DeepLab).
    freeze_level: `none`, `backbone` (train ASPP, decoder and logits) or
      `all_but_logits` (train only the logits).
    transfer_steps: Keep `freeze_level` for this many steps, then fine-tune
      everything (0: for the whole run).
    mixed_precision: ``, `float16` (with loss scaling) or `bfloat16`.
    jit_compile: Compile the training step with XLA.
    deterministic: Reproducible training: op determinism, seeded weights,
      and the input iterator's position saved in checkpoints.
    seed: Seed used when `deterministic`.
    keep_best_checkpoint: With online evaluation, keep the checkpoint of
      the best mIoU in `train_logdir/best`.
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
  learning_rate_boundaries: Tuple[int, ...] = ()
  learning_rate_values: Tuple[float, ...] = ()
  warmup_steps: int = 0
  warmup_learning_rate: float = 0.0
  adamw_weight_decay: float = 1e-4
  label_weights: Optional[Tuple[float, ...]] = None
  class_weighting: str = "none"
  top_k_percent_pixels: float = 1.0
  hard_example_mining_step: int = 0
  label_smoothing: float = 0.0
  focal_gamma: float = 0.0
  focal_alpha: float = 1.0
  aux_loss_weight: float = 0.0
  tf_initial_checkpoint: str = ""
  initialize_last_layer: bool = True
  last_layers_contain_logits_only: bool = False
  last_layer_gradient_multiplier: float = 1.0
  freeze_level: str = "none"
  transfer_steps: int = 0
  mixed_precision: str = ""
  jit_compile: bool = False
  deterministic: bool = False
  seed: int = 0
  keep_best_checkpoint: bool = True


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
