"""A small DeepLab trained briefly on a tiny demo dataset (for export tests).

Parity between export formats only means something on a trained model:
untrained logits are nearly tied and any rounding flips the argmax.
"""

import os

import keras

from deeplab.core import config as config_lib
from deeplab.core.training import factory
from deeplab.datasets import build_demo_data
from deeplab.datasets import input_pipeline

IMAGE_SIZE = 64
MODEL_CONFIG = dict(
    model_variant="mobilenet_v2", num_classes=5, output_stride=16,
    decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=32,
    decoder_filters=32, low_level_filters=16, batch_norm_momentum=0.9,
    aspp_dropout_rate=0.0, backbone_initializer="variance_scaling")


def build_demo_tfrecords(root, num_train=64, num_val=16, seed=5):
  """Generates the demo images and their TFRecords under `root`."""
  info = build_demo_data.generate_demo_dataset(
      os.path.join(root, "voc"), num_train=num_train, num_val=num_val,
      image_size=IMAGE_SIZE, seed=seed)
  tfrecord_dir = os.path.join(root, "tfrecord")
  build_demo_data.build_demo_tfrecords(info["output_dir"], tfrecord_dir,
                                       num_shards=2)
  return tfrecord_dir


def train_demo_model(tfrecord_dir, model_dir, steps=500):
  """Trains the small model; returns (runner, checkpoint path).

  Seeded, and with fan-in initialization (which learns faster from
  scratch, docs/benchmarks.md): with slim's initializers and no seed, about
  one run in three still predicted only two classes after 500 steps.
  """
  keras.utils.set_random_seed(0)
  model_config = config_lib.ModelConfig(**MODEL_CONFIG)
  train_config = config_lib.TrainConfig.from_flat(
      train_logdir=model_dir, training_number_of_steps=steps,
      optimizer="momentum", base_learning_rate=0.05, save_interval_steps=steps,
      log_steps=50, image_summary_steps=0)
  runner = factory.make_runner(model_config, model_dir, 255,
                                  train_config=train_config)
  data_config = config_lib.DataConfig(
      dataset="demo", dataset_dir=tfrecord_dir, split="train", batch_size=8,
      crop_size=(IMAGE_SIZE, IMAGE_SIZE), min_scale_factor=0.75,
      max_scale_factor=1.5, deterministic=True, seed=0)
  runner.train(input_pipeline.make_input_fn(data_config), steps)
  return runner, runner.latest_checkpoint()
