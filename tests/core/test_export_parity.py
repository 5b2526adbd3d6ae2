"""Every export format gives the trained Keras model's answer.

One model is trained briefly on a tiny demo dataset (about 30 s), then
exported to every format, with probabilities (the outputs of earlier
exports) and lean (labels only, the default); each format is compared with
the Keras model pixel by pixel, and scored on the val split.
"""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.evaluation import eval_loop
from deeplab.core.export import frozen_graph
from deeplab.core.export import mnn_export
from deeplab.core.export import onnx_export
from deeplab.core.export import predictors
from deeplab.core.export import saved_model
from deeplab.core.export import tflite_export
from deeplab.core.modeling import model_variants
import trained_demo

pytestmark = pytest.mark.slow
SIZE = trained_demo.IMAGE_SIZE


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("parity")
  tfrecord_dir = trained_demo.build_demo_tfrecords(str(root))
  runner, _ = trained_demo.train_demo_model(tfrecord_dir, str(root / "train"))
  model = runner.model
  export_dir = root / "export"
  writers = {
      "frozen_inference_graph.pb":
          lambda p: frozen_graph.write_frozen_graph(model, p,
                                                    with_probabilities=True),
      "deeplab.onnx": lambda p: onnx_export.write_onnx(
          model, p, with_probabilities=True),
      "lean.onnx": lambda p: onnx_export.write_onnx(model, p),
  }
  try:
    mnn_export.require_mnn()
    writers["deeplab_float32.mnn"] = lambda p: mnn_export.write_mnn(
        model, p, (SIZE, SIZE))
    writers["deeplab_uint8.mnn"] = lambda p: mnn_export.write_mnn(
        model, p, (SIZE, SIZE), "uint8",
        calibration_images=_calibration_images(tfrecord_dir))
  except ValueError:
    pass  # The MNN tests skip, saying why.
  for quantization in tflite_export.QUANTIZATIONS:
    # int8 lean (labels), as export_model.py writes it by default.
    writers[f"deeplab_{quantization}.tflite"] = (
        lambda p, q=quantization: _write_tflite(model, tfrecord_dir, p, q,
                                                q != "int8"))
  version = saved_model.export_saved_model(model, str(export_dir),
                                        extra_writers=writers,
                                        with_probabilities=True)
  lean = saved_model.export_saved_model(model, str(root / "lean"))
  examples = list(eval_loop.iter_examples(tfrecord_dir, "val"))
  keras_predictor = predictors.KerasPredictor(model)
  return dict(version=version, lean=lean, examples=examples,
              keras=keras_predictor,
              keras_labels=[keras_predictor(e[1])[0] for e in examples])


def _calibration_images(tfrecord_dir):
  """The int8 calibration images, as export_model.py reads them."""
  return tflite_export.images_from_tfrecords(
      tfrecord_dir, "train", (SIZE, SIZE), max_images=32,
      mean_pixel=model_variants.get_model_variant(
          trained_demo.MODEL_CONFIG["model_variant"]).mean_pixel)


def _write_tflite(model, tfrecord_dir, path, quantization,
                  with_probabilities):
  images = _calibration_images(tfrecord_dir)
  with open(path, "wb") as f:
    f.write(tflite_export.convert(model, (SIZE, SIZE), quantization, images,
                                  with_probabilities=with_probabilities))


FORMAT_FILES = {
    "saved_model": "", "frozen_graph": "frozen_inference_graph.pb",
    "tflite_float32": "deeplab_float32.tflite",
    "tflite_float16": "deeplab_float16.tflite",
    "tflite_int8": "deeplab_int8.tflite", "onnx": "deeplab.onnx",
}


def _agreement(trained, predictor):
  agree = total = 0
  for (_, image, _), expected in zip(trained["examples"],
                                     trained["keras_labels"]):
    labels, probabilities = predictor(image)
    assert labels.shape == expected.shape
    if predictor.has_probabilities:
      assert probabilities.shape == expected.shape + (5,)
    else:
      assert probabilities is None
    agree += int((labels == expected).sum())
    total += expected.size
  return agree / total


def test_the_trained_model_predicts_several_classes(trained):
  classes = np.unique(np.concatenate([l.ravel()
                                      for l in trained["keras_labels"]]))
  assert len(classes) >= 3, classes


@pytest.mark.parametrize("name", ["saved_model", "frozen_graph",
                                  "tflite_float32", "tflite_float16", "onnx"])
def test_float_formats_give_the_keras_argmax(trained, name):
  predictor = predictors.load_predictor(
      os.path.join(trained["version"], FORMAT_FILES[name]))
  assert predictor.name == name
  threshold = 0.995 if name == "tflite_float16" else 0.999
  assert _agreement(trained, predictor) >= threshold


def test_onnx_logits_match_keras_relative_to_the_largest(trained):
  predictor = predictors.load_predictor(
      os.path.join(trained["version"], "deeplab.onnx"))
  crop = trained["examples"][4][1][5:58, 3:50]  # Odd sizes: explicit pads.
  for image in [e[1] for e in trained["examples"][:4]] + [crop]:
    expected = trained["keras"].logits(image)
    actual = predictor.logits(image)
    scale = np.abs(expected).max()
    assert np.abs(actual - expected).max() <= 1e-3 * scale


def test_int8_agrees_and_keeps_the_miou(trained):
  int8 = predictors.load_predictor(
      os.path.join(trained["version"], "deeplab_int8.tflite"))
  float32 = predictors.load_predictor(
      os.path.join(trained["version"], "deeplab_float32.tflite"))
  assert int8.quantized and int8.name == "tflite_int8"
  assert _agreement(trained, int8) >= 0.95
  scores = {
      p.name: eval_loop.evaluate_predictor(p, trained["examples"], 5, 255)
      for p in (int8, float32)}
  assert scores["tflite_float32"]["miou"] > 0.2
  assert abs(scores["tflite_int8"]["miou"] -
             scores["tflite_float32"]["miou"]) <= 0.03


def test_lean_labels_equal_the_full_exports_labels(trained):
  """The lean SavedModel (argmax of the logits, no softmax) gives exactly
  the labels of the export with probabilities, on every val image."""
  lean = predictors.load_predictor(trained["lean"])
  full = predictors.load_predictor(trained["version"])
  assert not lean.has_probabilities and full.has_probabilities
  for _, image, _ in trained["examples"]:
    np.testing.assert_array_equal(lean(image)[0], full(image)[0])


@pytest.mark.parametrize("name", ["deeplab.onnx", "lean.onnx"])
def test_onnx_and_saved_model_argmax_agree_everywhere(trained, name):
  onnx = predictors.load_predictor(os.path.join(trained["version"], name))
  saved = predictors.load_predictor(trained["lean"])
  for _, image, _ in trained["examples"]:
    np.testing.assert_array_equal(onnx(image)[0], saved(image)[0])


def test_onnx_graph_ends_in_nhwc_with_the_softmax_on_the_last_axis(trained):
  onnx = pytest.importorskip("onnx")
  full = onnx.load(os.path.join(trained["version"], "deeplab.onnx")).graph
  (softmax,) = [n for n in full.node if n.op_type == "Softmax"]
  assert [a.i for a in softmax.attribute if a.name == "axis"] == [-1]
  # The softmax reads the NHWC logits, not the NCHW resize output.
  assert softmax.input[0] == "logits"
  lean = onnx.load(os.path.join(trained["version"], "lean.onnx")).graph
  assert [o.name for o in lean.output] == ["semantic_predictions"]
  ops = collections.Counter(n.op_type for n in lean.node)
  # Image pooling, decoder, logits: no second (identity) logits resize.
  assert ops["Softmax"] == 0 and ops["Resize"] == 3
  # Dilated convs are plain Conv nodes (`rewrite_same_dilations`), so the
  # only layout change left is the input's NHWC -> NCHW.
  assert ops["SpaceToDepth"] == ops["DepthToSpace"] == 0
  assert ops["Transpose"] == 1


def test_lean_int8_tflite_is_integer_from_end_to_end(trained):
  """uint8 in, int32 labels out, and every op on integers: no float
  island (DEQUANTIZE, float softmax/resize/argmax)."""
  data = open(os.path.join(trained["version"], "deeplab_int8.tflite"),
              "rb").read()
  interpreter = tf.lite.Interpreter(model_content=data)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  float_ops = [op["op_name"] for op in interpreter._get_ops_details()  # pylint: disable=protected-access
               if any(tensors[i]["dtype"] == np.float32
                      for i in [*op["inputs"], *op["outputs"]] if i >= 0)]
  assert not float_ops
  assert interpreter.get_input_details()[0]["dtype"] == np.uint8
  assert interpreter.get_output_details()[0]["dtype"] == np.int32


def test_mnn_float32_gives_the_keras_argmax(trained):
  path = os.path.join(trained["version"], "deeplab_float32.mnn")
  if not os.path.exists(path):
    pytest.skip("the mnn package is not installed: pip install "
                "'deeplab[export]'")
  predictor = predictors.load_predictor(path)
  assert predictor.name == "mnn_float32"
  assert _agreement(trained, predictor) >= 0.999


def _mnn_op_types(path):
  """The type of every op MNN runs for `path` (int8 ones end in
  `[ DT_INT8 ]`)."""
  import MNN  # pylint: disable=g-import-not-at-top
  interpreter = MNN.Interpreter(path)
  session = interpreter.createSession({"numThread": 1})
  types = []
  interpreter.runSessionWithCallBackInfo(
      session, lambda tensors, info: types.append(info.getType()) or True,
      lambda tensors, info: True)
  return types


def test_mnn_uint8_runs_on_int8_agrees_and_keeps_the_miou(trained):
  """Calibrated uint8 MNN: every convolution on int8, a third of the
  float file, and near the Keras argmax (0.974 when written; int8 TFLite
  0.990) and the float mIoU."""
  path = os.path.join(trained["version"], "deeplab_uint8.mnn")
  if not os.path.exists(path):
    pytest.skip("the mnn package is not installed: pip install "
                "'deeplab[export]'")
  float_path = os.path.join(trained["version"], "deeplab_float32.mnn")
  assert os.path.getsize(path) < 0.4 * os.path.getsize(float_path)
  types = collections.Counter(_mnn_op_types(path))
  assert types["Convolution [ DT_INT8 ] "] >= 30
  assert types["ConvolutionDepthwise [ DT_INT8 ] "] >= 10
  assert not types["Convolution"] and not types["ConvolutionDepthwise"]
  uint8 = predictors.load_predictor(path)
  float32 = predictors.load_predictor(float_path)
  assert uint8.name == "mnn_uint8" and not uint8.has_probabilities
  assert _agreement(trained, uint8) >= 0.95
  scores = {
      p.name: eval_loop.evaluate_predictor(p, trained["examples"], 5, 255)
      for p in (uint8, float32)}
  assert abs(scores["mnn_uint8"]["miou"] -
             scores["mnn_float32"]["miou"]) <= 0.03
