"""Flags shared by the apps, and their conversion into config dataclasses.

Flag names follow official research/deeplab (`common.py`, `train.py`,
`eval.py`, `export_model.py`) wherever a flag means the same thing. This is
the only module that reads flag values; it turns them into
`deeplab.core.config` dataclasses which the library takes as arguments.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags
from absl import logging


def _quiet_cpu_only_logs() -> None:
  """Silences TensorFlow's C++ CUDA probe errors (`E0000 ... cuInit`) on
  machines without a GPU, unless the user set TF_CPP_MIN_LOG_LEVEL."""
  if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
    return
  if not any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl",
                                         "/dev/dxg")):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


# Before TensorFlow is imported (below): it reads the level once.
_quiet_cpu_only_logs()

# No TensorFlow at import: the modeling and checkpoint modules (Keras, TF)
# are imported by the functions that use them, so an app path without a
# model (`evaluate.py --predictions_dir`) starts without TensorFlow.
from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from deeplab.datasets import data_descriptors  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

# Flags defined in each section below, for the grouped `--help`.
_before = set(FLAGS)

# === Model flags (official common.py) ===

flags.DEFINE_string("model_variant", "mobilenet_v2",
                    "Backbone and head variant, from the model-variant "
                    "registry (deeplab.core.modeling.model_variants).")
flags.DEFINE_integer("output_stride", 16,
                     "Input to backbone-output resolution ratio: 8, 16 or 32.")
flags.DEFINE_multi_integer("atrous_rates", None,
                           "Atrous rates of ASPP, repeated: --atrous_rates=6 "
                           "--atrous_rates=12 --atrous_rates=18 at OS16. None "
                           "gives ASPP lite (1x1 and image pooling).")
flags.DEFINE_integer("decoder_output_stride", None,
                     "Stride of the low-level feature fused by the DeepLabv3+ "
                     "decoder (4 in the paper). None disables the decoder.")
flags.DEFINE_float("depth_multiplier", 1.0, "MobileNet width multiplier.")
flags.DEFINE_boolean("aspp_with_separable_conv", True,
                     "Use separable convolutions in ASPP.")
flags.DEFINE_boolean("decoder_use_separable_conv", True,
                     "Use separable convolutions in the decoder.")
flags.DEFINE_boolean("add_image_level_feature", True,
                     "Add the image-pooling branch to ASPP.")
flags.DEFINE_float("batch_norm_decay", 0.9997,
                   "BatchNorm moving-average decay (official 0.9997; about "
                   "0.9 suits short runs from scratch).")
flags.DEFINE_float("weight_decay", 4e-5, "L2 weight decay on conv kernels.")
flags.DEFINE_multi_integer("multi_grid", None,
                           "Unit rates of the last backbone block, repeated: "
                           "--multi_grid=1 --multi_grid=2 --multi_grid=4. "
                           "None takes the variant's default.")
flags.DEFINE_enum("head", "aspp", ["aspp", "lr_aspp"],
                  "Segmentation head: ASPP (+ v3+ decoder), or the Lite "
                  "R-ASPP of MobileNetV3 (uses --decoder_output_stride, "
                  "default 8, as its low-level stride).")
flags.DEFINE_integer("aspp_convs_filters", 256,
                     "Filters of the ASPP branches and projection.")
flags.DEFINE_integer("decoder_filters", 256, "Filters of the decoder convs.")
flags.DEFINE_list("image_pooling_crop_size", None,
                  "'height,width': ASPP image pooling averages over a window "
                  "of (crop - 1) // output_stride + 1 feature pixels instead "
                  "of globally.")
flags.DEFINE_list("image_pooling_stride", ["1", "1"],
                  "'height,width' stride of that image-pooling window.")
flags.DEFINE_boolean("aspp_with_concat_projection", True,
                     "Project the concatenated ASPP branches (1x1 conv).")
flags.DEFINE_boolean("aspp_with_squeeze_and_excitation", False,
                     "Image pooling gates ASPP (sigmoid) instead of being "
                     "concatenated (MobileNetV3 head).")
flags.DEFINE_boolean("image_se_uses_qsigmoid", False,
                     "That gate is a hard sigmoid.")
flags.DEFINE_string("aspp_branches", None,
                    "Custom ASPP branches, as JSON or a .json file: e.g. "
                    "'[{\"type\": \"pooling\"}, {\"type\": \"conv\"}, "
                    "{\"type\": \"separable\", \"rate\": 6}]'. Replaces "
                    "--atrous_rates, --aspp_with_separable_conv and "
                    "--add_image_level_feature.")
flags.DEFINE_boolean("decoder_use_sum_merge", False,
                     "Sum-merge decoder (MobileNetV3 head).")
flags.DEFINE_boolean("decoder_output_is_logits", False,
                     "The decoder output is the logits (MobileNetV3 head).")
flags.DEFINE_boolean("use_bounded_activation", False,
                     "ReLU6 instead of ReLU in the head and the ResNet and "
                     "Xception backbones (Xception also clips linear outputs "
                     "to [-6, 6]), for quantization.")
flags.DEFINE_boolean("quant_friendly", False,
                     "Quantization-friendly separable convs: no BN or "
                     "activation after depthwise convs, ReLU instead of ReLU6 "
                     "(MobileNet backbones and head).")
flags.DEFINE_boolean("boundary_refinement", False,
                     "Add a boundary-refinement block on the logits.")
flags.DEFINE_string("backbone_initializer", "",
                    "Keras initializer of the backbone's conv kernels when "
                    "training from scratch (e.g. variance_scaling); empty "
                    "keeps the official one. Loaded weights replace it.")
flags.DEFINE_string("dense_prediction_cell_json", "",
                    "Dense prediction cell (Chen et al. 2018) in place of "
                    "ASPP: an official-format JSON file, or a shipped preset "
                    "name (dense_prediction_cell_branch5_top1_cityscapes).")
flags.DEFINE_integer("nas_stem_output_num_conv_filters", 20,
                     "Filters of the first cells of the NAS backbones "
                     "(nas_pnasnet, nas_hnasnet).")
flags.DEFINE_boolean("nas_use_classification_head", False,
                     "Add the NAS ImageNet classification head (convs down "
                     "to stride 32, then 1x1 to 2048 channels).")
flags.DEFINE_boolean("nas_remove_os32_stride", False,
                     "NAS cells at the stride-32 level keep stride 16.")
flags.DEFINE_float("drop_path_keep_prob", 1.0,
                   "Probability to keep each path in the NAS cells when "
                   "training; ramps in over --training_number_of_steps "
                   "(1: off).")
flags.DEFINE_integer("quantize_delay_step", -1,
                     "Steps to start quantized training. If < 0, will not "
                     "quantize model (official). Quantization-aware "
                     "training: fake-quant ops from this step on; read from "
                     "a checkpoint's model_config.json by evaluate and "
                     "export (int8 TFLite then needs no calibration data).")
flags.DEFINE_boolean("prediction_with_upsampled_logits", True,
                     "When performing prediction, there are two options: (1) "
                     "bilinear upsampling the logits followed by argmax, or "
                     "(2) argmax at the logits' stride followed by nearest-"
                     "neighbour upsampling of the labels (official; faster, "
                     "blockier). Single-scale evaluation, vis and export.")
flags.DEFINE_multi_float("image_pyramid", None,
                         "Input scales for multi-scale feature extraction "
                         "(official), repeated: their logits are merged by "
                         "--merge_method; training puts a loss on each scale "
                         "and on the merged logits. Single-scale evaluation, "
                         "vis and export use it too.")
flags.DEFINE_enum("merge_method", "max", list(config_lib.MERGE_METHODS),
                  "Scheme to merge multi scale features (official).")
flags.DEFINE_integer("num_classes", None,
                     "Number of classes; defaults to the dataset's.")
flags.DEFINE_boolean("override_model_config", False,
                     "Let model flags given on the command line replace the "
                     "model_config.json saved beside the checkpoint (each "
                     "replaced value is logged as a warning). Without it, a "
                     "contradicting model flag is an error.")

MODEL_FLAGS = sorted(set(FLAGS) - _before)
_before = set(FLAGS)

# === Data flags ===

flags.DEFINE_string("dataset", "pascal_voc_seg",
                    "Dataset name in the registry (deeplab.datasets."
                    "data_descriptors), or 'custom' with --num_classes.")
flags.DEFINE_string("dataset_dir", None,
                    "Folder with the {split}-*-of-*.tfrecord shards.")
flags.DEFINE_integer("min_resize_value", None,
                     "Resize so the short side is at least this.")
flags.DEFINE_integer("max_resize_value", None,
                     "Resize so the long side is at most this.")
flags.DEFINE_integer("resize_factor", None,
                     "Resized dimensions are multiple of factor plus one "
                     "(official; with --min_resize_value/--max_resize_value, "
                     "e.g. 16 for 16k+1 sides).")
flags.DEFINE_enum("out_of_range_labels", "error", ["error", "ignore"],
                  "Label values outside [0, num_classes) other than the "
                  "ignore label: error (stop, naming the split, count and a "
                  "value) or ignore (train and score without them, with a "
                  "warning giving the count).")
flags.DEFINE_boolean("skip_corrupt_records", False,
                     "Skip unreadable records of a truncated or corrupted "
                     "TFRecord shard (logging which) instead of stopping "
                     "with an error naming the shard.")

DATA_FLAGS = sorted(set(FLAGS) - _before)
_before = set(FLAGS)

# === Augmentation flags ===
# Training-only extras beyond official scale/crop/flip, all off by default
# (deeplab.datasets.augment).

flags.DEFINE_float("max_rotation_degrees", 0.,
                   "Random rotation in [-d, d] degrees (label: nearest, "
                   "filled with the ignore label). 0: off.")
flags.DEFINE_float("brightness_max_delta", 0.,
                   "Random brightness shift, as a fraction of 255. 0: off.")
flags.DEFINE_float("contrast_max_delta", 0.,
                   "Random contrast factor in [1-d, 1+d]. 0: off.")
flags.DEFINE_float("saturation_max_delta", 0.,
                   "Random saturation factor in [1-d, 1+d]. 0: off.")
flags.DEFINE_float("hue_max_delta", 0.,
                   "Random hue shift in [-d, d] turns (<= 0.5). 0: off.")
flags.DEFINE_float("blur_probability", 0.,
                   "Probability of a Gaussian blur. 0: off.")
flags.DEFINE_float("blur_max_sigma", 1.5, "Largest blur sigma in pixels.")
flags.DEFINE_float("noise_stddev", 0.,
                   "Additive Gaussian noise stddev in pixel units. 0: off.")
flags.DEFINE_float("gridmask_probability", 0.,
                   "Probability of GridMask (Chen et al. 2020). 0: off.")
flags.DEFINE_float("gridmask_ratio", 0.5,
                   "GridMask square side as a fraction of the grid period.")
flags.DEFINE_integer("gridmask_min_period", 32,
                     "Smallest GridMask period in pixels.")
flags.DEFINE_integer("gridmask_max_period", 128,
                     "Largest GridMask period in pixels.")


AUGMENTATION_FLAGS = sorted(set(FLAGS) - _before)
del _before


def augment_params_from_flags() -> config_lib.AugmentParams:
  """The extra training augmentations from their flags, validated.

  Raises:
    ValueError: naming the flag whose value is out of range.
  """
  return config_lib.AugmentParams(**{
      field.name: getattr(FLAGS, field.name)
      for field in dataclasses.fields(config_lib.AugmentParams)})


def model_config_from_flags(num_classes: int) -> config_lib.ModelConfig:
  """Builds the `ModelConfig` from the model flags.

  Args:
    num_classes: The dataset's number of classes, used unless --num_classes
      is set.

  Raises:
    ValueError: naming the flag, for an unknown --model_variant or values
      out of range.
  """
  # pylint: disable=g-import-not-at-top (no TensorFlow at import, see top)
  from deeplab.core.modeling import model_variants
  from deeplab.core.modeling.heads import aspp
  from deeplab.core.modeling.heads import dense_prediction_cell
  # pylint: enable=g-import-not-at-top
  model_variants.get_model_variant(FLAGS.model_variant)  # Fail early.
  return config_lib.ModelConfig(
      model_variant=FLAGS.model_variant,
      num_classes=FLAGS.num_classes or num_classes,
      output_stride=FLAGS.output_stride,
      atrous_rates=tuple(FLAGS.atrous_rates or ()),
      decoder_output_stride=FLAGS.decoder_output_stride,
      depth_multiplier=FLAGS.depth_multiplier,
      aspp_with_separable_conv=FLAGS.aspp_with_separable_conv,
      decoder_use_separable_conv=FLAGS.decoder_use_separable_conv,
      add_image_level_feature=FLAGS.add_image_level_feature,
      batch_norm_momentum=FLAGS.batch_norm_decay,
      # Official: 4e-5, and 1e-4 for ResNet backbones, unless given.
      weight_decay=(FLAGS.weight_decay if FLAGS["weight_decay"].present
                    else config_lib.default_weight_decay(
                        FLAGS.model_variant)),
      multi_grid=tuple(FLAGS.multi_grid) if FLAGS.multi_grid else None,
      head=FLAGS.head,
      aspp_filters=FLAGS.aspp_convs_filters,
      decoder_filters=FLAGS.decoder_filters,
      image_pooling_crop_size=(
          crop_size_from_flag(FLAGS.image_pooling_crop_size,
                              "image_pooling_crop_size")
          if FLAGS.image_pooling_crop_size else None),
      image_pooling_stride=crop_size_from_flag(FLAGS.image_pooling_stride,
                                               "image_pooling_stride"),
      aspp_with_concat_projection=FLAGS.aspp_with_concat_projection,
      aspp_with_squeeze_and_excitation=(
          FLAGS.aspp_with_squeeze_and_excitation),
      image_se_uses_qsigmoid=FLAGS.image_se_uses_qsigmoid,
      aspp_branches=(tuple(aspp.parse_branches(FLAGS.aspp_branches))
                     if FLAGS.aspp_branches else None),
      decoder_use_sum_merge=FLAGS.decoder_use_sum_merge,
      decoder_output_is_logits=FLAGS.decoder_output_is_logits,
      use_bounded_activation=FLAGS.use_bounded_activation,
      quant_friendly=FLAGS.quant_friendly,
      boundary_refinement=FLAGS.boundary_refinement,
      backbone_initializer=_backbone_initializer_from_flag(),
      dense_prediction_cell_config=(
          tuple(dense_prediction_cell.load_config(
              FLAGS.dense_prediction_cell_json))
          if FLAGS.dense_prediction_cell_json else None),
      nas_stem_output_num_conv_filters=FLAGS.nas_stem_output_num_conv_filters,
      nas_use_classification_head=FLAGS.nas_use_classification_head,
      nas_remove_os32_stride=FLAGS.nas_remove_os32_stride,
      drop_path_keep_prob=FLAGS.drop_path_keep_prob,
      # Official train.py: the drop-path schedule spans the whole training.
      drop_path_total_steps=(FLAGS.training_number_of_steps
                             if "training_number_of_steps" in FLAGS
                             else config_lib.ModelConfig.drop_path_total_steps),
      quantize_delay_step=max(-1, FLAGS.quantize_delay_step),
      prediction_with_upsampled_logits=FLAGS.prediction_with_upsampled_logits,
      image_pyramid=tuple(FLAGS.image_pyramid or ()) or None,
      merge_method=FLAGS.merge_method,
  )


# ModelConfig fields set by no model flag (the aux head follows train.py's
# --aux_loss_weight; sync_batch_norm the number of replicas).
_NO_MODEL_FLAG = ("low_level_filters", "aspp_dropout_rate",
                  "batch_norm_epsilon", "sync_batch_norm", "aux_head",
                  "aux_head_filters", "aux_head_dropout_rate", "num_classes")


def explicit_model_flags() -> dict:
  """ModelConfig field -> flag name, for the model flags given explicitly
  on the command line (`--num_classes` included)."""
  explicit = {}
  for field in dataclasses.fields(config_lib.ModelConfig):
    flag = config_lib.ModelConfig.flag_name(field.name)
    if (field.name not in _NO_MODEL_FLAG and flag in FLAGS and
        FLAGS[flag].present):
      explicit[field.name] = flag
  if FLAGS["num_classes"].present:
    explicit["num_classes"] = "num_classes"
  return explicit


def model_config_for_checkpoint(path: str, num_classes: int,
                                flag_name: str) -> config_lib.ModelConfig:
  """The model of a checkpoint: its saved `model_config.json`, checked
  against the model flags; the model flags alone for a checkpoint saved
  before model configs were (as before).

  Args:
    path: The checkpoint prefix, train_logdir or import output.
    num_classes: The dataset's number of classes.
    flag_name: The flag that gave `path`, for messages.

  Raises:
    ValueError: naming the flag and both values, when an explicit model
      flag (or --dataset's number of classes) contradicts the saved config
      and --override_model_config is not given.
  """
  from deeplab.core import checkpoints  # pylint: disable=g-import-not-at-top
  given = model_config_from_flags(num_classes)
  saved = checkpoints.read_model_config(path)
  if saved is None:
    logging.info("%s has no %s: the model is built from the model flags.",
                 path, checkpoints.MODEL_CONFIG_FILE)
    return given
  explicit = explicit_model_flags()
  dataset_contradicts = ("num_classes" not in explicit and
                         FLAGS["dataset"].present and
                         num_classes != saved.num_classes)
  if dataset_contradicts and FLAGS.override_model_config:
    explicit["num_classes"] = "num_classes"  # The dataset's, logged below.
  elif dataset_contradicts:
    raise ValueError(
        f"--dataset={FLAGS.dataset} has {num_classes} classes, but the model "
        f"config of --{flag_name} {path} has num_classes={saved.num_classes}. "
        "Pass the dataset it was trained on, or --override_model_config.")
  logging.info("Model config read from %s.",
               checkpoints.model_config_path(path))
  # How the model predicts is the command line's to choose, if given.
  inference = {field: getattr(given, field)
               for field in config_lib.INFERENCE_FIELDS
               if explicit.pop(field, None)}
  merged = checkpoints.merge_model_config(
      saved, given, explicit, FLAGS.override_model_config,
      source=f"--{flag_name} {path}")
  return dataclasses.replace(merged, **inference)


def _backbone_initializer_from_flag() -> str:
  """--backbone_initializer, checked against Keras's initializer names."""
  name = FLAGS.backbone_initializer
  if name:
    import keras  # pylint: disable=g-import-not-at-top
    try:
      keras.initializers.get(name)
    except ValueError:
      raise ValueError(
          f"--backbone_initializer={name!r} is not a Keras initializer name "
          "(e.g. variance_scaling, he_normal, glorot_uniform).") from None
  return name


def crop_size_from_flag(value, flag_name: str):
  """Parses a `H,W` crop-size flag into a (height, width) tuple."""
  size = config_lib.parse_int_list(value, flag_name)
  if len(size) != 2 or min(size) <= 0:
    raise ValueError(
        f"--{flag_name} expects two positive integers 'height,width', got "
        f"{value!r}.")
  return size


CUSTOM_DATASET = "custom"


def dataset_descriptor_from_flags():
  """The registry entry named by --dataset (raises naming unknown names).

  `--dataset=custom` describes a user's own dataset without registering it
  in code: it takes --num_classes (required) and ignore label 255.
  """
  if FLAGS.dataset == CUSTOM_DATASET:
    if not FLAGS.num_classes:
      raise flags.ValidationError(
          "--dataset=custom needs --num_classes (background included).")
    return data_descriptors.make_custom_descriptor(CUSTOM_DATASET,
                                                   FLAGS.num_classes)
  return data_descriptors.get_dataset_descriptor(FLAGS.dataset)


def require_flag(name: str):
  """Raises a clear error when a required path flag is empty."""
  if not getattr(FLAGS, name):
    raise flags.ValidationError(f"--{name} is required.")


# Errors that mean "the user's input is wrong": reported as one clear line,
# without a traceback. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError,
               NotADirectoryError, flags.ValidationError)


def data_flags_for(config: config_lib.DataConfig,
                   num_classes: int) -> config_lib.DataConfig:
  """`config` with the shared data-checking flags and the class count."""
  return dataclasses.replace(
      config, num_classes=num_classes,
      out_of_range_labels=FLAGS.out_of_range_labels,
      skip_corrupt_records=FLAGS.skip_corrupt_records)


def warn_prediction_flags_for_exports() -> None:
  """Exports predict as they were exported (the options are baked into the
  graph and saved in its model_config.json): warns that the official
  prediction flags given (`config.INFERENCE_FIELDS`) do not change a
  --model_path export."""
  given = [f"--{name}" for name in config_lib.INFERENCE_FIELDS
           if FLAGS[name].present]
  if given:
    logging.warning("%s: for checkpoints and export_model.py only; the "
                    "export at --model_path predicts as it was exported.",
                    ", ".join(given))


def _exit_with_error(error):
  logging.error("%s", error)
  sys.exit(f"ERROR: {error}")


# === --help: the app's own flags, grouped ===

_DISTRIBUTION = {"distribution_strategy", "num_gpus", "tpu"}
_EVALUATION = {"keep_best_checkpoint", "max_number_of_evaluations",
               "save_predictions", "cityscapes_results_dir",
               "num_eval_images", "add_flipped_images"}
_DATA = {"train_split", "train_crop_size", "min_scale_factor",
         "max_scale_factor", "scale_factor_step_size"}
_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort")


def _group_of(name: str, main_group: str) -> str:
  if name in _DISTRIBUTION:
    return "Distribution"
  if main_group == "Training" and (name.startswith("eval_") or
                                   name in _EVALUATION):
    return "Evaluation"  # Online evaluation while training.
  if name in _DATA:
    return "Data"
  return main_group


def _format_flag(flag) -> str:
  import textwrap  # pylint: disable=g-import-not-at-top
  details = [f"default: {flag.default_as_str or 'None'}"]
  values = getattr(flag.parser, "enum_values", None)
  if values:
    details.append("one of: " + ", ".join(values))
  text = f"--{flag.name}: {flag.help} ({'; '.join(details)})"
  return textwrap.fill(text, width=80, initial_indent="  ",
                       subsequent_indent="      ")


def format_help(module, main_group: str, common) -> str:
  """The app's `--help`: its docstring (what it does, an example), then its
  own flags and the shared ones it uses, by group.

  Args:
    module: The app's module (its docstring and flags).
    main_group: Title of the group of the app's own flags.
    common: (title, flag names) of the shared flags the app reads.
  """
  groups = {}
  for title, names in common:
    groups.setdefault(title, []).extend(names)
  for flag in FLAGS.get_key_flags_for_module(module):
    if not any(flag.name in names for names in groups.values()):
      groups.setdefault(_group_of(flag.name, main_group), []).append(
          flag.name)
  lines = [(module.__doc__ or "").strip(), ""]
  for title, names in groups.items():
    lines.append(f"{title} flags:")
    lines.extend(_format_flag(FLAGS[name]) for name in sorted(set(names)))
    lines.append("")
  lines.append("--helpfull lists every flag, absl's and TensorFlow's "
               "included.")
  return "\n".join(lines)


def _handle_help(module, main_group: str, common) -> None:
  """Prints the help and exits 0 on --help/--helpfull (absl exits 1)."""
  argv = sys.argv[1:]
  if "--" in argv:
    argv = argv[:argv.index("--")]
  if "--helpfull" in argv:
    print((module.__doc__ or "").strip() + "\n")
    print(FLAGS.get_help())
    sys.exit(0)
  if any(arg in _HELP_FLAGS for arg in argv):
    print(format_help(module, main_group, common))
    sys.exit(0)


def run_app(main, main_group: str = "Application", common=()):
  """Runs an absl `main`, turning user-input errors into a one-line message.

  Args:
    main: The app's `main(argv)`.
    main_group: Title of the app's own flags in `--help`.
    common: (title, flag names) of the shared flags the app reads, for
      `--help`.
  """
  module = sys.modules[main.__module__]
  _handle_help(module, main_group, common)

  # absl's --helpxml lists the flags of the module named by sys.argv[0];
  # under a console script (`deeplab-train`) that is the wrapper, so
  # register the app's flags and the shared ones for it too.
  for source in (module, sys.modules[__name__]):
    for flag in FLAGS.get_key_flags_for_module(source):
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def checked_main(argv):
    try:
      return main(argv)
    except USER_ERRORS as error:
      _exit_with_error(error)
    except Exception as error:  # pylint: disable=broad-except
      # Data errors raised inside tf.data (out-of-range labels, a truncated
      # shard) reach here as TensorFlow errors, and so do writes on a full
      # or read-only disk: report them in one line.
      from deeplab.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
      from deeplab.core import io_utils  # pylint: disable=g-import-not-at-top
      message = (input_pipeline.explain_error(error) or
                 io_utils.explain_write_error(error))
      if message is None:
        raise
      _exit_with_error(message)

  app.run(checked_main, flags_parser=_parse_flags)


def _parse_flags(argv):
  """absl's parsing, with a bad flag value reported in one `ERROR:` line
  (absl prints a FATAL line and a usage hint)."""
  try:
    return FLAGS(argv)
  except flags.Error as error:
    _exit_with_error(f"{error}")
