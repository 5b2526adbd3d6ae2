"""Exports a trained DeepLab checkpoint (official `export_model.py` flags).

Writes one version folder `export_path/<version>/` in TF Serving's layout,
atomically (written aside, renamed when complete). It holds:

* the SavedModel: `serving_default` takes `ImageTensor`, a uint8 batch
  [B, H, W, 3] of any size, and returns `semantic_predictions` (int32 labels
  at the input size); `serving_encoded` takes `image_bytes`, encoded
  JPEG/PNG strings, for REST clients;
* and, per --export_formats:
  - `frozen_inference_graph.pb`: frozen GraphDef with the official tensor
    names `ImageTensor:0` -> `SemanticPredictions:0`;
  - `deeplab_float32.tflite`, `deeplab_float16.tflite`: fixed input
    --crop_size, float32 pixels in, labels out;
  - `deeplab_int8.tflite`: full-integer (int8 inside), uint8 pixels in,
    int32 labels out, calibrated on --representative_dataset_dir /
    --representative_split, or with the ranges learned by
    quantization-aware training (a checkpoint trained with
    --quantize_delay_step: no calibration images);
  - `deeplab.onnx` (tf2onnx, opset 17): uint8 in, labels out;
  - `deeplab_float32.mnn` (MNN, from ONNX): fixed input --crop_size,
    float32 NCHW pixels in, labels out;
  - `deeplab_uint8.mnn`: the same contract, int8 weights and activations
    inside, calibrated by MNN's quantizer on the int8 TFLite images
    (--representative_dataset_dir; single-scale, unflipped only).

Every format returns labels only (the argmax of the upsampled logits, no
full-resolution softmax; with --noprediction_with_upsampled_logits the
argmax at the logits' stride, upsampled by nearest neighbour as official
`predict_labels`; with --image_pyramid the merged logits of those scales)
unless --export_probabilities, which adds the
outputs of earlier versions: `probabilities` (SavedModel, TFLite, and ONNX
with `logits`; uint8 probabilities only for int8 TFLite) and
`SemanticProbabilities:0` (frozen graph).

The network is built from the `model_config.json` saved beside the
checkpoint (`core/checkpoints.py`), so no model flag is needed; a model flag
that contradicts it is an error (--override_model_config to force it).
Checkpoints saved without one are built from the model flags, as before.

Pre-processing and multi-scale/flip averaging (--inference_scales,
--add_flipped_images) live inside every exported graph.

Example:

  python -m deeplab.export_model \\
    --checkpoint_path=/runs/voc --export_path=/models/deeplab \\
    --crop_size=513,513 \\
    --export_formats=saved_model,frozen_graph,tflite_float32,tflite_int8,onnx,mnn_float32,mnn_uint8 \\
    --representative_dataset_dir=/data/voc/tfrecord
"""

import os

from absl import flags
from absl import logging

from deeplab import common_flags
from deeplab.core import checkpoints
from deeplab.core.export import frozen_graph
from deeplab.core.export import mnn_export
from deeplab.core.export import onnx_export
from deeplab.core.export import saved_model
from deeplab.core.export import tflite_export
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import multiscale
from deeplab.core.modeling import quantize

FLAGS = flags.FLAGS

EXPORT_FORMATS = ("saved_model", "frozen_graph", "tflite_float32",
                  "tflite_float16", "tflite_int8", "onnx", "mnn_float32",
                  "mnn_uint8")
FILE_NAMES = {
    "frozen_graph": frozen_graph.FROZEN_GRAPH_NAME,
    "tflite_float32": "deeplab_float32.tflite",
    "tflite_float16": "deeplab_float16.tflite",
    "tflite_int8": "deeplab_int8.tflite",
    "onnx": "deeplab.onnx",
    "mnn_float32": "deeplab_float32.mnn",
    "mnn_uint8": "deeplab_uint8.mnn",
}

flags.DEFINE_string("checkpoint_path", None,
                    "Checkpoint prefix, or a train_logdir (its latest "
                    "checkpoint is used).")
flags.DEFINE_string("export_path", None,
                    "Model base folder; the version is written below it.")
flags.DEFINE_integer("export_version", None,
                     "Version folder to write; the next free integer when "
                     "unset. An existing version is never overwritten.")
flags.DEFINE_list("crop_size", None,
                  "'height,width' of the fixed TFLite input (official "
                  "crop_size). The SavedModel, frozen graph and ONNX take "
                  "any size.")
flags.DEFINE_multi_float("inference_scales", [1.0],
                         "Scales for multi-scale inference; repeat the flag.")
if "add_flipped_images" not in FLAGS:  # Also defined by evaluate.py.
  flags.DEFINE_boolean("add_flipped_images", False,
                       "Also average left-right flipped inputs.")
flags.DEFINE_list("export_formats", ["saved_model"],
                  f"Formats to write, from {list(EXPORT_FORMATS)}. The "
                  "SavedModel is always written.")
flags.DEFINE_string("representative_dataset_dir", None,
                    "TFRecord folder whose images calibrate int8 TFLite "
                    "and uint8 MNN.")
flags.DEFINE_string("representative_split", "train",
                    "Split of --representative_dataset_dir to calibrate on.")
flags.DEFINE_integer("num_representative_images", 100,
                     "Images used for int8 TFLite and uint8 MNN "
                     "calibration.")
flags.DEFINE_boolean("export_probabilities", False,
                     "Also output the class probabilities (and ONNX logits), "
                     "as exports before the lean serving graph did; without "
                     "it every format outputs labels only.")


def _parse_formats(values):
  formats = [v.strip() for v in values if v.strip()]
  unknown = sorted(set(formats) - set(EXPORT_FORMATS))
  if unknown:
    raise ValueError(f"--export_formats: unknown {unknown}; known: "
                     f"{list(EXPORT_FORMATS)}.")
  return formats


def make_writers(model, formats, scales, add_flipped_images, crop_size,
                 representative_dir, representative_split,
                 num_representative_images,
                 mean_pixel=deeplab_layers.UNIT_RANGE_MEAN_RGB,
                 with_probabilities=False):
  """{file name: write(path)} for every non-SavedModel format; int8
  calibration images are padded with `mean_pixel` (the variant's);
  `with_probabilities` (--export_probabilities) adds probabilities."""
  writers = {}
  needs_size = [f for f in formats if f.startswith(("tflite", "mnn"))]
  if needs_size and not crop_size:
    raise ValueError(f"{needs_size} need --crop_size (the fixed TFLite/MNN "
                     "input 'height,width').")
  if any(f.startswith("mnn") for f in formats):
    mnn_export.require_mnn()  # Before the slow conversions.
  if "mnn_uint8" in formats and not representative_dir:
    raise ValueError("mnn_uint8 needs --representative_dataset_dir (a "
                     "TFRecord folder) to calibrate on.")
  if "mnn_uint8" in formats:
    mnn_export.check_uint8_inference(scales, add_flipped_images)
  if ("tflite_int8" in formats and not representative_dir and
      not quantize.is_quantized(model)):
    raise ValueError("tflite_int8 needs --representative_dataset_dir (a "
                     "TFRecord folder) to calibrate on, unless the "
                     "checkpoint is quantization-aware trained "
                     "(--quantize_delay_step).")
  for export_format in formats:
    if export_format == "frozen_graph":
      writers[FILE_NAMES[export_format]] = (
          lambda path: frozen_graph.write_frozen_graph(
              model, path, scales, add_flipped_images, with_probabilities))
    elif export_format == "onnx":
      writers[FILE_NAMES[export_format]] = (
          lambda path: onnx_export.write_onnx(
              model, path, scales, add_flipped_images,
              with_probabilities=with_probabilities))
    elif export_format.startswith("mnn"):
      quantization = export_format.split("_", 1)[1]

      def write_mnn(path, quantization=quantization):
        images = None
        if quantization == "uint8":
          images = tflite_export.images_from_tfrecords(
              representative_dir, representative_split, crop_size,
              num_representative_images, mean_pixel=mean_pixel)
        mnn_export.write_mnn(model, path, crop_size, quantization, scales,
                             add_flipped_images, with_probabilities, images)

      writers[FILE_NAMES[export_format]] = write_mnn
    elif export_format.startswith("tflite"):
      quantization = export_format.split("_", 1)[1]

      def write(path, quantization=quantization):
        images = None
        if quantization == "int8" and not quantize.is_quantized(model):
          images = tflite_export.images_from_tfrecords(
              representative_dir, representative_split, crop_size,
              num_representative_images, mean_pixel=mean_pixel)
        data = tflite_export.convert(model, crop_size, quantization, images,
                                     scales, add_flipped_images,
                                     with_probabilities=with_probabilities)
        with open(path, "wb") as f:  # Inside the temporary version folder.
          f.write(data)

      writers[FILE_NAMES[export_format]] = write
  return writers


def restore_model_from_flags():
  """The model of --checkpoint_path, built from its model_config.json (or,
  for checkpoints saved without one, the model flags), weights restored.
  Exports serve the main logits: no auxiliary head."""
  descriptor = common_flags.dataset_descriptor_from_flags()
  model_config = common_flags.model_config_for_checkpoint(
      FLAGS.checkpoint_path, descriptor.num_classes, "checkpoint_path")
  model_config = checkpoints.inference_model_config(model_config)
  model = deeplab_model.build_deeplab_model(model_config)
  checkpoints.restore_model(model, FLAGS.checkpoint_path, "checkpoint_path")
  return model, model_config


def main(argv):
  del argv
  common_flags.require_flag("checkpoint_path")
  common_flags.require_flag("export_path")
  formats = _parse_formats(FLAGS.export_formats)
  scales = multiscale.validate_scales(FLAGS.inference_scales,
                                      "inference_scales")
  crop_size = (common_flags.crop_size_from_flag(FLAGS.crop_size, "crop_size")
               if FLAGS.crop_size else None)
  version = FLAGS.export_version
  if version is not None:
    target = os.path.join(FLAGS.export_path, str(version))
    if os.path.exists(target):  # Fail before the slow conversions.
      raise FileExistsError(
          f"Export version {target!r} already exists; pass another "
          "--export_version or remove it.")
  model, model_config = restore_model_from_flags()
  writers = make_writers(model, formats, scales,
                         FLAGS.add_flipped_images, crop_size,
                         FLAGS.representative_dataset_dir,
                         FLAGS.representative_split,
                         FLAGS.num_representative_images,
                         model.get_layer("preprocess").mean_pixel,
                         FLAGS.export_probabilities)
  # The fixed-size formats pad with the variant's mean pixel: readers
  # (`predictors.load_predictor`) take it from this file.
  writers[checkpoints.MODEL_CONFIG_FILE] = (
      lambda path: checkpoints.write_model_config(os.path.dirname(path),
                                                  model_config))
  path = saved_model.export_saved_model(
      model, FLAGS.export_path, version=version, scales=scales,
      add_flipped_images=FLAGS.add_flipped_images, extra_writers=writers,
      with_probabilities=FLAGS.export_probabilities)
  logging.info("Exported %s", path)
  print(f"Exported SavedModel to {path}")
  for name in ["saved_model.pb", *writers]:
    if name == checkpoints.MODEL_CONFIG_FILE:
      continue
    artifact = os.path.join(path, name)
    size = (sum(os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(path) for f in files
                if f not in writers)
            if name == "saved_model.pb" else os.path.getsize(artifact))
    label = "saved_model (folder)" if name == "saved_model.pb" else name
    print(f"  {label:<28} {size / 2**20:8.2f} MB  {artifact}")


def run():
  """Console-script entry point (`deeplab-export`)."""
  common_flags.run_app(main, "Export", [
      ("Data", ["dataset"]), ("Model", common_flags.MODEL_FLAGS)])


if __name__ == "__main__":
  run()
