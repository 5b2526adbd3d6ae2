"""`python -m deeplab.vis`: official vis.py file names and checkpoint watching.

Official `research/deeplab/vis.py` writes `segmentation_results/%06d_image.png`
and `%06d_prediction.png` (colormap applied) and, with
--also_save_raw_predictions, `raw_segmentation_results/<image name>.png`,
Cityscapes trainIds converted to labelIds (tested in
tests/core/evaluation/test_vis_writer.py).
"""

import os
import subprocess
import sys
import threading

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import testing_utils
from deeplab.core import checkpoints
from deeplab.core import config as config_lib
from deeplab.core.export import predictors
from deeplab.core.modeling import deeplab_model
from deeplab.datasets import colormaps
from deeplab.datasets import tfrecord_io

SIZE = 32


def _model_config(num_classes):
  return config_lib.ModelConfig(
      model_variant="mobilenet_v2", num_classes=num_classes, output_stride=16,
      decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=16,
      decoder_filters=16, batch_norm_momentum=0.9)


def _read(path):
  with Image.open(path) as image:
    return image.mode, np.array(image)


class _Demo:
  """A demo dataset (3 val images of 32x32) and checkpoints of one model.

  The model is untrained but its predictions vary from pixel to pixel
  (`testing_utils.make_predictions_nontrivial`), so label comparisons test
  something; training would only cost test time here.
  """

  def __init__(self, root):
    testing_utils.build_demo_tfrecords(root, num_train=2, num_val=3,
                                       image_size=SIZE)
    self.tfrecord_dir = str(root / "tfrecord")
    self.train_dir = str(root / "train")
    self.model = deeplab_model.build_deeplab_model(_model_config(5))
    images = np.stack([image for _, image in _val_examples(self.tfrecord_dir)])
    testing_utils.make_predictions_nontrivial(self.model, images)
    self.manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=self.model), self.train_dir, max_to_keep=5)
    # The model travels with its checkpoints, as training writes it.
    checkpoints.write_model_config(self.train_dir, _model_config(5))

  def save(self, step, seed):
    """Writes a checkpoint whose logits layer is drawn from `seed`."""
    kernel = self.model.get_layer("logits").kernel
    kernel.assign(np.random.default_rng(seed).normal(
        0, 1, kernel.shape).astype(np.float32))
    return self.manager.save(checkpoint_number=step)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
  return _Demo(tmp_path_factory.mktemp("vis_demo"))


def test_vis_writes_official_names_and_watches_checkpoints(demo, tmp_path):
  """Official names; a second checkpoint written while it waits is shown.

  No model flag is passed: the network comes from model_config.json.
  """
  tfrecord_dir, train_dir = demo.tfrecord_dir, demo.train_dir
  demo.save(step=10, seed=1)
  vis_dir = tmp_path / "vis"
  process = subprocess.Popen(
      [sys.executable, "-m", "deeplab.vis", "--dataset=demo",
       f"--dataset_dir={tfrecord_dir}", f"--checkpoint_dir={train_dir}",
       f"--vis_logdir={vis_dir}", "--vis_split=val",
       f"--vis_crop_size={SIZE},{SIZE}", "--vis_batch_size=2",
       "--also_save_raw_predictions", "--max_number_of_iterations=2",
       "--eval_interval_secs=1"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=testing_utils.APP_ENV)
  watchdog = threading.Timer(300, process.kill)  # readline() blocks.
  watchdog.start()
  try:
    first = process.stdout.readline()
    assert "visualized 3 images" in first, process.stderr.read()[-3000:]
    second_checkpoint = demo.save(step=20, seed=2)
    out, err = process.communicate(timeout=120)
  finally:
    watchdog.cancel()
    process.kill()
  assert process.returncode == 0, err[-3000:]
  assert f"visualized 3 images of {second_checkpoint}" in out

  results = vis_dir / "segmentation_results"
  assert sorted(os.listdir(results)) == [
      f"{i:06d}_{kind}.png" for i in range(3) for kind in ("image",
                                                           "prediction")]
  # The files show the second checkpoint (the model holds its weights).
  predictor = predictors.KerasPredictor(demo.model)
  pascal = colormaps.get_colormap("pascal")
  examples = list(_val_examples(tfrecord_dir))
  raw_names = []
  for i, (name, image) in enumerate(examples):
    mode, written = _read(results / f"{i:06d}_image.png")
    assert mode == "RGB"
    np.testing.assert_array_equal(written, image)
    labels, _ = predictor(image)
    mode, colored = _read(results / f"{i:06d}_prediction.png")
    assert mode == "RGB"
    np.testing.assert_array_equal(colored, pascal[labels])
    mode, raw = _read(vis_dir / "raw_segmentation_results" / f"{name}.png")
    assert mode == "L"
    np.testing.assert_array_equal(raw, labels)
    raw_names.append(f"{name}.png")
  assert sorted(os.listdir(vis_dir / "raw_segmentation_results")) == sorted(
      raw_names)


def _val_examples(tfrecord_dir):
  dataset = tf.data.TFRecordDataset(tfrecord_io.list_shards(
      tfrecord_dir, "val")).map(tfrecord_io.parse_example)
  for example in dataset:
    yield example["filename"].numpy().decode(), example["image"].numpy()
