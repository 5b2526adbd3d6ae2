"""Configuration dataclasses: one per concern, built once at the edge.

The absl apps (`train.py`, `evaluate.py`, ...) turn their flags into these
dataclasses (see `deeplab/common_flags.py`) and pass them down. Library code
never reads flags. Field names follow the official research/deeplab flags
wherever a field means the same thing.
"""

import dataclasses
from typing import Callable, Optional, Sequence, Tuple

# Choices, named here so that flags, configs and the library agree.
OPTIMIZERS = ("momentum", "adam", "adamw", "rmsprop")
LEARNING_POLICIES = ("poly", "step", "exponential", "cosine", "piecewise")
CLASS_WEIGHTING_SCHEMES = ("none", "balanced", "median_frequency", "adaptive")
FREEZE_LEVELS = ("none", "backbone", "all_but_logits")
MIXED_PRECISION = ("", "float16", "bfloat16")
DISTRIBUTION_STRATEGIES = ("default", "one_device", "mirrored",
                           "multi_worker_mirrored", "tpu")
# How official `multi_scale_logits` merges the logits of `image_pyramid`.
MERGE_METHODS = ("max", "avg")
# ModelConfig fields that change how a model predicts (and, for
# image_pyramid, trains), not the weights it holds: a command line may set
# them on top of a checkpoint's saved config (`common_flags`).
INFERENCE_FIELDS = ("prediction_with_upsampled_logits", "image_pyramid",
                    "merge_method")
# ModelConfig fields whose flag has another (official) name.
MODEL_FLAG_NAMES = {"aspp_filters": "aspp_convs_filters",
                    "batch_norm_momentum": "batch_norm_decay",
                    "dense_prediction_cell_config":
                        "dense_prediction_cell_json",
                    "drop_path_total_steps": "training_number_of_steps"}


# Official DeepLab's weight decay: 4e-5, and 1e-4 for ResNet backbones.
DEFAULT_WEIGHT_DECAY = 4e-5
RESNET_WEIGHT_DECAY = 1e-4


def default_weight_decay(model_variant: str) -> float:
  """The official weight decay of a backbone (1e-4 for ResNet)."""
  return (RESNET_WEIGHT_DECAY if model_variant.startswith("resnet")
          else DEFAULT_WEIGHT_DECAY)


def _check(config, flag_name: Callable[[str], str], checks) -> None:
  """Raises `ValueError("--flag must be <what>, got <value>.")` for the
  first failed (field, ok, what) check."""
  for field, ok, what in checks:
    if not ok:
      raise ValueError(f"--{flag_name(field)} must be {what}, got "
                       f"{getattr(config, field)!r}.")


def _flag(field: str) -> str:
  return field


def _choice(field: str, value, choices) -> Tuple[str, bool, str]:
  return (field, value in choices, f"one of {', '.join(map(repr, choices))}")


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
    aux_head: Add an auxiliary head (`core/modeling/heads/aux_head.py`,
      PSPNet-style deep supervision) on the variant's `aux_endpoint`; the model then returns
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
    dense_prediction_cell_config: The dense prediction cell's branches
      (official JSON form, `heads/dense_prediction_cell.load_config` of
      `--dense_prediction_cell_json`): the head in place of ASPP.
    nas_stem_output_num_conv_filters: Filters of the first NAS cells
      (official flag; nas_pnasnet, nas_hnasnet).
    nas_use_classification_head: Add the NAS ImageNet classification head
      (downsampling convs and a 1x1 conv to 2048 channels).
    nas_remove_os32_stride: NAS cells at the stride-32 level keep stride 16.
    drop_path_keep_prob: NAS drop path keep probability (official train
      flag; training only, 1 is off).
    drop_path_total_steps: Steps over which drop path ramps in (official
      `total_training_steps`: train.py's --training_number_of_steps).
    quantize_delay_step: Quantization-aware training (official
      `--quantize_delay_step`): -1 builds the float model; N >= 0 builds
      it with fake-quant ops (`core/modeling/quantize.py`) that training
      switches on at step N. Saved in model_config.json, so evaluation and
      export rebuild the quantized model.
    prediction_with_upsampled_logits: Official flag (True): single-pass
      prediction takes the argmax of the logits upsampled (bilinear) to the
      input size; False takes it at the logits' stride and resizes the
      labels by nearest neighbour (faster, blockier), and the
      probabilities are the softmax resized bilinearly (official
      `model.predict_labels`). Multi-scale inference always upsamples.
    image_pyramid: Official flag: input scales whose logits are computed,
      resized to the logits' size at max(1, largest scale) and merged by
      `merge_method`, in training (each scale's logits and the merged ones
      get a loss) and in single-pass prediction (official
      `multi_scale_logits`); None is one plain pass.
    merge_method: `max` or `avg`: how `image_pyramid` logits merge.
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
  dense_prediction_cell_config: Optional[Tuple[dict, ...]] = None
  nas_stem_output_num_conv_filters: int = 20
  nas_use_classification_head: bool = False
  nas_remove_os32_stride: bool = False
  drop_path_keep_prob: float = 1.0
  drop_path_total_steps: int = 500000
  quantize_delay_step: int = -1
  prediction_with_upsampled_logits: bool = True
  image_pyramid: Optional[Tuple[float, ...]] = None
  merge_method: str = "max"

  def __post_init__(self):
    self._check_sizes()
    self._check_image_pyramid()
    self._check_dense_prediction_cell()
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

  def _check_sizes(self):
    """Positive sizes and counts, rates in range; errors name the flag."""
    _check(self, ModelConfig.flag_name, [
        ("num_classes", self.num_classes >= 2, "at least 2"),
        ("depth_multiplier", self.depth_multiplier > 0, "positive"),
        ("aspp_filters", self.aspp_filters > 0, "positive"),
        ("decoder_filters", self.decoder_filters > 0, "positive"),
        ("low_level_filters", self.low_level_filters > 0, "positive"),
        ("aux_head_filters", self.aux_head_filters > 0, "positive"),
        ("decoder_output_stride", self.decoder_output_stride is None or
         self.decoder_output_stride > 0, "positive"),
        ("aspp_dropout_rate", 0 <= self.aspp_dropout_rate < 1, "in [0, 1)"),
        ("aux_head_dropout_rate", 0 <= self.aux_head_dropout_rate < 1,
         "in [0, 1)"),
        ("batch_norm_momentum", 0 <= self.batch_norm_momentum < 1,
         "in [0, 1)"),
        ("batch_norm_epsilon", self.batch_norm_epsilon > 0, "positive"),
        ("weight_decay", self.weight_decay >= 0, ">= 0"),
        ("nas_stem_output_num_conv_filters",
         self.nas_stem_output_num_conv_filters > 0, "positive"),
        ("drop_path_keep_prob", 0 < self.drop_path_keep_prob <= 1,
         "in (0, 1]"),
        ("drop_path_total_steps", self.drop_path_total_steps > 0, "positive"),
        ("quantize_delay_step", self.quantize_delay_step >= -1,
         ">= -1 (-1: no quantization)"),
    ])

  def _check_image_pyramid(self):
    """Positive, distinct scales; a known merge method."""
    _check(self, ModelConfig.flag_name,
           [_choice("merge_method", self.merge_method, MERGE_METHODS)])
    if not self.image_pyramid:
      self.image_pyramid = None
      return
    try:
      self.image_pyramid = tuple(float(s) for s in self.image_pyramid)
    except (TypeError, ValueError):
      raise ValueError("--image_pyramid expects numbers, got "
                       f"{self.image_pyramid!r}.") from None
    # Distinct as official names their logits: `logits_%.2f`.
    names = {f"{s:.2f}" for s in self.image_pyramid}
    if min(self.image_pyramid) <= 0 or len(names) != len(self.image_pyramid):
      raise ValueError("--image_pyramid expects distinct positive scales, "
                       f"got {list(self.image_pyramid)}.")

  def _check_dense_prediction_cell(self):
    """The dense prediction cell replaces ASPP: not with other heads."""
    if self.dense_prediction_cell_config is None:
      return
    self.dense_prediction_cell_config = tuple(
        self.dense_prediction_cell_config)
    if self.head != "aspp" or self.aspp_branches is not None:
      raise ValueError(
          "--dense_prediction_cell_json replaces ASPP: it cannot go with "
          f"--head={self.head} or --aspp_branches.")

  @staticmethod
  def flag_name(field: str) -> str:
    """The command-line flag of a field (`common_flags`)."""
    return MODEL_FLAG_NAMES.get(field, field)


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
    _check(self, _flag, [
        ("max_rotation_degrees", 0 <= self.max_rotation_degrees <= 180,
         "in [0, 180]"),
        ("brightness_max_delta", 0 <= self.brightness_max_delta <= 1,
         "in [0, 1]"),
        ("contrast_max_delta", 0 <= self.contrast_max_delta < 1, "in [0, 1)"),
        ("saturation_max_delta", 0 <= self.saturation_max_delta < 1,
         "in [0, 1)"),
        ("hue_max_delta", 0 <= self.hue_max_delta <= 0.5, "in [0, 0.5]"),
        ("blur_probability", 0 <= self.blur_probability <= 1, "in [0, 1]"),
        ("blur_max_sigma", self.blur_max_sigma > 0, "positive"),
        ("noise_stddev", self.noise_stddev >= 0, ">= 0"),
        ("gridmask_probability", 0 <= self.gridmask_probability <= 1,
         "in [0, 1]"),
        ("gridmask_ratio", 0 < self.gridmask_ratio < 1, "in (0, 1)"),
        ("gridmask_min_period",
         1 <= self.gridmask_min_period <= self.gridmask_max_period,
         "in [1, --gridmask_max_period]"),
    ])

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
      canvas, which must be at least the largest image; (0, 0) for
      full-image evaluation.
    min_resize_value: Optional: resize so the short side is at least this.
    max_resize_value: Optional: resize so the long side is at most this.
    resize_factor: Optional: resized sides become multiples of it plus one
      (official `--resize_factor`, e.g. 16 for 16k+1 sides).
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
    mean_pixel: RGB value that pads images (and fills rotations and
      GridMask): the model variant's `ModelVariant.mean_pixel`, which its
      preprocessing maps to 0 (official `feature_extractor.mean_pixel`).
      The apps set it from --model_variant; the default is that of the
      [-1, 1] variants.
    num_classes: When set, label values outside [0, num_classes) other than
      the ignore label are checked as they are read
      (`deeplab.datasets.label_checks`).
    out_of_range_labels: What such labels do: "error" (stop, naming them)
      or "ignore" (map them to the ignore label, with a warning).
    skip_corrupt_records: Skip unreadable records of truncated or corrupted
      shards instead of failing.
  """

  dataset: str = "pascal_voc_seg"
  ignore_label: Optional[int] = None
  dataset_dir: str = ""
  split: str = "train"
  batch_size: int = 8
  crop_size: Tuple[int, int] = (513, 513)
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
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
  mean_pixel: Tuple[float, float, float] = (127.5, 127.5, 127.5)
  num_classes: Optional[int] = None
  out_of_range_labels: str = "error"
  skip_corrupt_records: bool = False

  def __post_init__(self):
    """Positive sizes and counts; errors name the train or eval flag."""
    prefix = "train" if self.is_training else "eval"
    self.crop_size = tuple(int(v) for v in self.crop_size)
    if len(self.crop_size) != 2 or min(self.crop_size) < 0 or (
        0 in self.crop_size and self.crop_size != (0, 0)):
      raise ValueError(f"--{prefix}_crop_size must be two positive integers "
                       f"'height,width', got {list(self.crop_size)}.")
    names = {"batch_size": f"{prefix}_batch_size",
             "split": f"{prefix}_split"}
    _check(self, lambda field: names.get(field, field), [
        ("batch_size", self.batch_size > 0, "positive"),
        ("min_resize_value", self.min_resize_value is None or
         self.min_resize_value > 0, "positive"),
        ("max_resize_value", self.max_resize_value is None or
         self.max_resize_value > 0, "positive"),
        ("resize_factor", self.resize_factor is None or
         self.resize_factor > 0, "positive"),
        ("min_scale_factor", self.min_scale_factor > 0, "positive"),
        ("max_scale_factor", self.max_scale_factor >= self.min_scale_factor,
         f">= --min_scale_factor ({self.min_scale_factor})"),
        ("scale_factor_step_size", self.scale_factor_step_size >= 0, ">= 0"),
        ("shuffle_buffer", self.shuffle_buffer > 0, "positive"),
    ])


@dataclasses.dataclass
class LossConfig:
  """How the per-pixel loss is computed (one place for every loss option).

  Attributes:
    label_weights: Optional per-class weights (length C); a pixel's loss is
      multiplied by its class weight, as official `label_weights` does.
    class_weighting: `none`, `balanced` or `median_frequency` (weights
      computed from the training split's labels, replacing
      `label_weights`), or `adaptive` (running frequencies).
    top_k_percent_pixels: Keep only the hardest fraction of pixels (hard
      pixel mining); 1.0 keeps all.
    hard_example_mining_step: Ramp the kept fraction linearly from 1.0 down
      to `top_k_percent_pixels` over this many steps (0: no ramp), as
      official DeepLab does.
    label_smoothing: Mix the one-hot target with the uniform distribution:
      `(1 - s) * onehot + s / C`.
    focal_gamma: Focal-loss focusing parameter; 0 is plain cross-entropy.
    focal_alpha: Focal-loss balance factor multiplying every pixel's loss
      (1.0: none).
    aux_loss_weight: Weight of an auxiliary head's loss, for models with a
      second (auxiliary) logits output (`ModelConfig.aux_head`); 0: none.
    upsample_logits: Compute the training loss on logits upsampled to the
      label size (official default); False downsamples the labels to the
      logits' stride instead (nearest, corners aligned: official
      `train_utils.add_softmax_cross_entropy_loss_for_each_scale`), which
      makes the loss and its gradient up to stride**2 times cheaper.
  """

  label_weights: Optional[Tuple[float, ...]] = None
  class_weighting: str = "none"
  top_k_percent_pixels: float = 1.0
  hard_example_mining_step: int = 0
  label_smoothing: float = 0.0
  focal_gamma: float = 0.0
  focal_alpha: float = 1.0
  aux_loss_weight: float = 0.0
  upsample_logits: bool = True

  def __post_init__(self):
    if self.label_weights is not None:
      self.label_weights = tuple(float(w) for w in self.label_weights)
    _check(self, _flag, [
        _choice("class_weighting", self.class_weighting,
                CLASS_WEIGHTING_SCHEMES),
        ("top_k_percent_pixels", 0.0 < self.top_k_percent_pixels <= 1.0,
         "in (0, 1]"),
        ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
        ("focal_gamma", self.focal_gamma >= 0, ">= 0"),
        ("focal_alpha", self.focal_alpha > 0, "positive"),
        ("hard_example_mining_step", self.hard_example_mining_step >= 0,
         ">= 0"),
        ("aux_loss_weight", self.aux_loss_weight >= 0, ">= 0"),
    ])
    if self.label_weights is not None and min(self.label_weights) < 0:
      raise ValueError("--label_weights must be >= 0, got "
                       f"{list(self.label_weights)}.")


@dataclasses.dataclass
class OptimizerConfig:
  """The optimizer (official default: momentum).

  Attributes:
    optimizer: `momentum`, `adam`, `adamw` or `rmsprop`.
    momentum: Momentum of `momentum` and `rmsprop`.
    adamw_weight_decay: Decoupled weight decay of `adamw`, on kernels only.
  """

  optimizer: str = "momentum"
  momentum: float = 0.9
  adamw_weight_decay: float = 1e-4

  def __post_init__(self):
    _check(self, _flag, [
        _choice("optimizer", self.optimizer, OPTIMIZERS),
        ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
        ("adamw_weight_decay", self.adamw_weight_decay >= 0, ">= 0"),
    ])


@dataclasses.dataclass
class ScheduleConfig:
  """The learning-rate schedule (`core/training/learning_rate.py`).

  Attributes:
    base_learning_rate: Learning rate at step 0 (after slow start).
    learning_policy: `poly`, `step`, `exponential`, `cosine` or
      `piecewise`.
    learning_power: Power of the poly policy.
    learning_rate_decay_step: Period of the step and exponential policies.
    learning_rate_decay_factor: Factor of the step and exponential policies.
    end_learning_rate: Floor of the poly and cosine policies.
    slow_start_step: Train this many steps at `slow_start_learning_rate`.
    slow_start_learning_rate: Learning rate during slow start.
    learning_rate_boundaries: Steps where the `piecewise` policy changes.
    learning_rate_values: Rates of the `piecewise` policy (one more).
    warmup_steps: Linear warmup length (0: none).
    warmup_learning_rate: Rate at the start of the warmup.
  """

  base_learning_rate: float = 0.007
  learning_policy: str = "poly"
  learning_power: float = 0.9
  learning_rate_decay_step: int = 2000
  learning_rate_decay_factor: float = 0.1
  end_learning_rate: float = 0.0
  slow_start_step: int = 0
  slow_start_learning_rate: float = 1e-4
  learning_rate_boundaries: Tuple[int, ...] = ()
  learning_rate_values: Tuple[float, ...] = ()
  warmup_steps: int = 0
  warmup_learning_rate: float = 0.0

  def __post_init__(self):
    self.learning_rate_boundaries = tuple(
        int(b) for b in self.learning_rate_boundaries)
    self.learning_rate_values = tuple(
        float(v) for v in self.learning_rate_values)
    _check(self, _flag, [
        ("base_learning_rate", self.base_learning_rate >= 0, ">= 0"),
        _choice("learning_policy", self.learning_policy, LEARNING_POLICIES),
        ("learning_power", self.learning_power > 0, "positive"),
        ("learning_rate_decay_step", self.learning_rate_decay_step > 0,
         "positive"),
        ("learning_rate_decay_factor", self.learning_rate_decay_factor > 0,
         "positive"),
        ("end_learning_rate", self.end_learning_rate >= 0, ">= 0"),
        ("slow_start_step", self.slow_start_step >= 0, ">= 0"),
        ("slow_start_learning_rate", self.slow_start_learning_rate >= 0,
         ">= 0"),
        ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
        ("warmup_learning_rate", self.warmup_learning_rate >= 0, ">= 0"),
    ])
    boundaries = list(self.learning_rate_boundaries)
    if self.learning_policy == "piecewise" and (
        len(self.learning_rate_values) != len(boundaries) + 1 or
        boundaries != sorted(boundaries)):
      raise ValueError(
          "--learning_policy=piecewise needs increasing "
          "--learning_rate_boundaries and one more --learning_rate_values; "
          f"got boundaries {boundaries} and values "
          f"{list(self.learning_rate_values)}.")


@dataclasses.dataclass
class CheckpointConfig:
  """Where and how often training checkpoints and logs.

  Attributes:
    train_logdir: Folder for checkpoints, `model_config.json` and
      TensorBoard summaries; training resumes from it.
    save_interval_steps: Save a checkpoint every this many steps.
    save_interval_secs: And at least every this many seconds.
    max_to_keep: Checkpoints kept in `train_logdir`.
    log_steps: Log (and write scalar summaries) every this many steps.
    image_summary_steps: Write image summaries every this many steps (0: off).
    keep_best_checkpoint: With online evaluation, keep the checkpoint of
      the best mIoU in `train_logdir/best`.
    profile_logdir: Write a TensorFlow profile (TensorBoard's Profile tab)
      of a window of training steps here (official flag); '' is off.
    profile_steps: The window, as (first, last) steps of this run, counted
      from 1; the first step traces the graph, so the default skips it.
  """

  train_logdir: str = ""
  save_interval_steps: int = 500
  save_interval_secs: float = 600.0
  max_to_keep: int = 5
  log_steps: int = 50
  image_summary_steps: int = 500
  keep_best_checkpoint: bool = True
  profile_logdir: str = ""
  profile_steps: Tuple[int, int] = (5, 9)

  def __post_init__(self):
    self.profile_steps = tuple(self.profile_steps)
    _check(self, _flag, [
        ("profile_steps", len(self.profile_steps) == 2
         and 1 <= self.profile_steps[0] <= self.profile_steps[1],
         "two steps 'first,last' with 1 <= first <= last"),
        ("save_interval_steps", self.save_interval_steps > 0, "positive"),
        ("save_interval_secs", self.save_interval_secs >= 0, ">= 0"),
        ("max_to_keep", self.max_to_keep > 0, "positive"),
        ("log_steps", self.log_steps > 0, "positive"),
        ("image_summary_steps", self.image_summary_steps >= 0, ">= 0"),
    ])


@dataclasses.dataclass
class TransferConfig:
  """Where training starts from, and which layers train.

  Attributes:
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
    fine_tune_batch_norm: Update BatchNorm statistics and parameters.
  """

  tf_initial_checkpoint: str = ""
  initialize_last_layer: bool = True
  last_layers_contain_logits_only: bool = False
  last_layer_gradient_multiplier: float = 1.0
  freeze_level: str = "none"
  transfer_steps: int = 0
  fine_tune_batch_norm: bool = True

  def __post_init__(self):
    _check(self, _flag, [
        ("last_layer_gradient_multiplier",
         self.last_layer_gradient_multiplier > 0, "positive"),
        _choice("freeze_level", self.freeze_level, FREEZE_LEVELS),
        ("transfer_steps", self.transfer_steps >= 0, ">= 0"),
    ])


@dataclasses.dataclass
class DistributionConfig:
  """Where and how fast the training step runs.

  Attributes:
    distribution_strategy: `default`, `one_device`, `mirrored`,
      `multi_worker_mirrored` (reads TF_CONFIG) or `tpu`.
    num_gpus: GPUs for `mirrored` (0: the CPU).
    tpu: TPU name or address for `tpu`.
    mixed_precision: ``, `float16` (with loss scaling) or `bfloat16`.
    jit_compile: Compile the training step with XLA.
    deterministic: Reproducible training: op determinism, seeded weights,
      and the input iterator's position saved in checkpoints.
    seed: Seed used when `deterministic`.
  """

  distribution_strategy: str = "default"
  num_gpus: int = 1
  tpu: str = ""
  mixed_precision: str = ""
  jit_compile: bool = False
  deterministic: bool = False
  seed: int = 0

  def __post_init__(self):
    _check(self, _flag, [
        _choice("distribution_strategy", self.distribution_strategy,
                DISTRIBUTION_STRATEGIES),
        ("num_gpus", self.num_gpus >= 0, ">= 0"),
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION),
    ])


@dataclasses.dataclass
class TrainConfig:
  """How to train: the run's length and its parts (Model Garden style).

  Attributes:
    training_number_of_steps: Total number of optimizer steps.
    optimizer: An `OptimizerConfig`.
    schedule: A `ScheduleConfig` (learning rate).
    loss: A `LossConfig`.
    checkpoint: A `CheckpointConfig` (train_logdir, saving, logging).
    transfer: A `TransferConfig` (initial checkpoint, frozen layers).
    distribution: A `DistributionConfig` (strategy, precision, seeds).
  """

  training_number_of_steps: int = 30000
  optimizer: OptimizerConfig = dataclasses.field(
      default_factory=OptimizerConfig)
  schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
  loss: LossConfig = dataclasses.field(default_factory=LossConfig)
  checkpoint: CheckpointConfig = dataclasses.field(
      default_factory=CheckpointConfig)
  transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)
  distribution: DistributionConfig = dataclasses.field(
      default_factory=DistributionConfig)

  def __post_init__(self):
    _check(self, _flag, [
        ("training_number_of_steps", self.training_number_of_steps > 0,
         "positive"),
    ])

  @staticmethod
  def parts() -> dict:
    """Part name -> its config class."""
    return {field.name: field.default_factory
            for field in dataclasses.fields(TrainConfig)
            if field.name != "training_number_of_steps"}

  @staticmethod
  def flat_field_names() -> Tuple[str, ...]:
    """Every leaf field (each is a `train.py` flag of the same name)."""
    return ("training_number_of_steps",) + tuple(
        field.name for part in TrainConfig.parts().values()
        for field in dataclasses.fields(part))

  @classmethod
  def from_flat(cls, **values) -> "TrainConfig":
    """A `TrainConfig` from leaf field values, each routed to its part
    (`train.py` passes its flags; unset fields keep their defaults).

    Raises:
      TypeError: naming unknown fields.
    """
    unknown = sorted(set(values) - set(cls.flat_field_names()))
    if unknown:
      raise TypeError(f"TrainConfig has no fields {unknown}.")
    parts = {
        name: part(**{field.name: values[field.name]
                      for field in dataclasses.fields(part)
                      if field.name in values})
        for name, part in cls.parts().items()}
    steps = values.get("training_number_of_steps",
                       cls.training_number_of_steps)
    return cls(training_number_of_steps=steps, **parts)


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
