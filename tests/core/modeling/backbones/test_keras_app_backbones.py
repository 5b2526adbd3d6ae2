"""Tests of the Keras Applications variants (deeplab.core.modeling.backbones.keras_app_backbones)
and of importing Keras .h5 weight files into them
(deeplab.core.modeling.import_weights.load_keras_h5)."""

import h5py
import keras
from keras.src.legacy.saving import legacy_h5_format
import numpy as np
import pytest

import backbone_test_utils as btu
from deeplab.core.modeling import import_weights
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import model_variants

# Odd at every stride after each architecture's stem (Xception: 71 -> 35
# -> 33 -> 17 -> 9 -> 5 -> 3; ResNet: 65 -> 33 -> 17 -> 9 -> 5 -> 3).
SIZES = {"resnet50": 65, "resnet101": 65, "xception": 71, "mobilenet_v2": 65}
# Keras Applications constructor and the layer our `final` matches.
KERAS_APPS = {
    "resnet50": (keras.applications.ResNet50, "conv5_block3_out"),
    "resnet101": (keras.applications.ResNet101, "conv5_block3_out"),
    "xception": (keras.applications.Xception, "block14_sepconv2_act"),
    "mobilenet_v2": (keras.applications.MobileNetV2, "block_16_project_BN"),
}


def _write_legacy_h5(model, path):
  """Writes weights in the format of Keras' downloadable ImageNet files."""
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.mark.parametrize("name", ["resnet50", "xception", "mobilenet_v2"])
def test_keras_application_parity(name, tmp_path):
  size = SIZES[name]
  constructor, endpoint = KERAS_APPS[name]
  reference = constructor(weights=None, include_top=False,
                          input_shape=(size, size, 3))
  btu.randomize(reference, seed=3)
  path = str(tmp_path / f"{name}_notop.h5")
  _write_legacy_h5(reference, path)

  ours = btu.backbone(name, 32, size=size)
  report = import_weights.load_keras_h5(ours, path)
  assert not report.missing and not report.mismatched
  weight_layers = [l for l in ours.layers if l.weights]
  assert len(report.matched) == len(weight_layers)
  # Only MobileNetV2's 1280-channel head conv has no counterpart.
  assert report.unused == (["Conv_1", "Conv_1_bn"]
                           if name == "mobilenet_v2" else [])

  x = btu.images(size)
  expected = keras.Model(reference.input,
                         reference.get_layer(endpoint).output)(x).numpy()
  actual = ours(x)["final"].numpy()
  assert actual.shape == expected.shape
  assert np.abs(expected).max() > 1e-2
  np.testing.assert_allclose(actual, expected, rtol=0,
                             atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_resnet101_has_keras_names_and_shapes():
  reference = keras.applications.ResNet101(weights=None, include_top=False,
                                           input_shape=(65, 65, 3))
  ours = btu.backbone("resnet101", 32, size=65)
  theirs = {l.name: [w.shape for w in l.weights]
            for l in reference.layers if l.weights}
  mine = {l.name: [w.shape for w in l.weights] for l in ours.layers
          if l.weights}
  assert mine == theirs


@pytest.mark.parametrize("name,output_stride", [
    ("resnet50", 8), ("resnet50", 16), ("xception", 8), ("xception", 16)])
def test_atrous_equivalence(name, output_stride):
  size = SIZES[name]
  nominal = btu.randomize(btu.backbone(name, 32, size=size))
  dense = btu.backbone(name, output_stride, size=size)
  btu.copy_weights(nominal, dense)
  btu.assert_atrous_equivalent(dense, nominal, output_stride,
                               btu.images(size))


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "xception"])
def test_registry_entries_and_endpoint_strides(name):
  variant = model_variants.get_model_variant(name)
  model = btu.backbone(name, 16, size=SIZES[name])
  final = model.output["final"].shape
  assert final[-1] == 2048
  sizes = {k: model.output[f"decoder_{k}"].shape[1]
           for k in variant.decoder_endpoints}
  assert sizes[4] > sizes[8] > sizes[16] == final[1]
  expected = "zero_mean_unit_range" if name == "xception" else "caffe"
  assert variant.preprocessing == expected


def test_caffe_preprocessing_matches_keras():
  images = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(
      "float32")
  ours = deeplab_layers.ImagePreprocessing("caffe")(images)
  expected = keras.applications.resnet.preprocess_input(images.copy())
  np.testing.assert_allclose(ours, expected, atol=1e-4)
  assert model_variants.get_model_variant("resnet50").mean_pixel == (
      deeplab_layers.CAFFE_MEAN_RGB)


def test_atrous_max_pooling_round_trip_and_values():
  layer = deeplab_layers.AtrousMaxPooling2D(3, 2, name="pool")
  clone = deeplab_layers.AtrousMaxPooling2D.from_config(layer.get_config())
  assert (clone.pool_size, clone.dilation_rate) == (3, 2)
  x = np.zeros((1, 5, 5, 1), "float32")
  x[0, 2, 4, 0] = 1.0
  y = layer(x).numpy()[0, :, :, 0]
  # Taps at distance 0 and 2 only: (2,4) reaches (0..4 step 2, 2 and 4).
  assert y[2, 2] == 1 and y[0, 2] == 1 and y[2, 3] == 0 and y[1, 4] == 0


def test_bad_file_errors(tmp_path):
  model = btu.backbone("resnet50", 32, size=65)
  with pytest.raises(FileNotFoundError, match="not found"):
    import_weights.load_keras_h5(model, str(tmp_path / "missing.h5"))
  path = tmp_path / "other.h5"
  with h5py.File(path, "w") as f:
    f.create_dataset("x", data=[1])
  with pytest.raises(ValueError, match="layer_names"):
    import_weights.load_keras_h5(model, str(path))
