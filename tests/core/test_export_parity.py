"""Every export format gives the trained Keras model's answer.

One model is trained briefly on a tiny demo dataset (about 30 s), then
exported to every format; each format is compared with the Keras model
pixel by pixel, and scored on the val split.
"""

import os

import numpy as np
import pytest

from deeplab.core.evaluation import eval_loop
from deeplab.core.export import frozen_graph
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
          lambda p: frozen_graph.write_frozen_graph(model, p),
      "deeplab.onnx": lambda p: onnx_export.write_onnx(model, p),
  }
  for quantization in tflite_export.QUANTIZATIONS:
    def write(path, quantization=quantization):
      images = tflite_export.images_from_tfrecords(
          tfrecord_dir, "train", (SIZE, SIZE), max_images=32,
          mean_pixel=model_variants.get_model_variant(
              trained_demo.MODEL_CONFIG["model_variant"]).mean_pixel)
      with open(path, "wb") as f:
        f.write(tflite_export.convert(model, (SIZE, SIZE), quantization,
                                      images))
    writers[f"deeplab_{quantization}.tflite"] = write
  version = saved_model.export_saved_model(model, str(export_dir),
                                        extra_writers=writers)
  examples = list(eval_loop.iter_examples(tfrecord_dir, "val"))
  keras_predictor = predictors.KerasPredictor(model)
  return dict(version=version, examples=examples, keras=keras_predictor,
              keras_labels=[keras_predictor(e[1])[0] for e in examples])


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
    assert probabilities.shape == expected.shape + (5,)
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
  for _, image, _ in trained["examples"][:4]:
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
