"""Fixtures of the dataset tests: small VOC-layout folders and TFRecords."""

import pathlib
import shutil

import pytest

from deeplab.datasets import build_demo_data

VOC_NAMES = ("2011_000003", "2011_000006", "2011_000025")


@pytest.fixture
def labelme_voc(shared_fixtures, tmp_path) -> pathlib.Path:
  """A writable copy of labelme's VOC export, with a train.txt of its three
  images (it ships no lists)."""
  root = tmp_path / "voc"
  shutil.copytree(
      shared_fixtures / "labelme/semantic_segmentation/data_dataset_voc",
      root)
  lists = root / "ImageSets" / "Segmentation"
  lists.mkdir(parents=True)
  (lists / "train.txt").write_text("".join(f"{n}\n" for n in VOC_NAMES))
  return root


@pytest.fixture(scope="session")
def demo_tfrecords(tmp_path_factory) -> pathlib.Path:
  """A tiny demo dataset (8 train, 5 val images of 64x64) as TFRecords."""
  root = tmp_path_factory.mktemp("demo")
  info = build_demo_data.generate_demo_dataset(
      str(root / "voc"), num_train=8, num_val=5, image_size=64, seed=1)
  build_demo_data.build_demo_tfrecords(info["output_dir"],
                                       str(root / "tfrecord"), num_shards=2)
  return root / "tfrecord"


def _read_split(output_dir, split):
  """Every record of a built split, parsed, in shard order, as numpy:
  {filename: (image uint8 [H, W, 3], label uint8 [H, W], format)}."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  records = {}
  for raw in tf.data.TFRecordDataset(
      tfrecord_io.list_shards(str(output_dir), split)):
    parsed = tfrecord_io.parse_example(raw)
    feature = tf.train.Example.FromString(raw.numpy()).features.feature
    records[parsed["filename"].numpy().decode()] = (
        parsed["image"].numpy(), parsed["label"].numpy()[..., 0],
        feature["image/format"].bytes_list.value[0].decode())
  return records


@pytest.fixture
def read_split():
  """`read_split(output_dir, split)`: the parsed records of a built split."""
  return _read_split
