"""Official Example format, shard names and shard listing."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab.datasets import label_io
from deeplab.datasets import tfrecord_io


def test_shard_path_format():
  assert tfrecord_io.shard_path("/o", "train", 1, 4) == (
      "/o/train-00001-of-00004.tfrecord")
  with pytest.raises(ValueError):
    tfrecord_io.shard_path("/o", "train", 4, 4)


def test_make_and_parse_example_round_trip():
  image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), np.uint8)
  label = np.random.default_rng(1).integers(0, 21, (5, 7)).astype(np.uint8)
  png = tf.io.encode_png(image).numpy()
  example = tfrecord_io.make_example(png, "a", 5, 7,
                                     label_io.encode_label_png(label),
                                     image_format="png")
  assert set(example.features.feature) == {
      "image/encoded", "image/filename", "image/format", "image/height",
      "image/width", "image/segmentation/class/encoded",
      "image/segmentation/class/format"}
  parsed = tfrecord_io.parse_example(example.SerializeToString())
  np.testing.assert_array_equal(parsed["image"], image)
  np.testing.assert_array_equal(parsed["label"][..., 0], label)
  assert parsed["label"].dtype == tf.uint8
  assert parsed["filename"].numpy() == b"a"
  assert (int(parsed["height"]), int(parsed["width"])) == (5, 7)


def test_list_shards_errors_name_the_problem(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope"):
    tfrecord_io.list_shards(str(tmp_path / "nope"), "train")
  with pytest.raises(ValueError, match="dataset_dir"):
    tfrecord_io.list_shards("", "train")
  (tmp_path / "val-00000-of-00001.tfrecord").write_bytes(b"")
  with pytest.raises(FileNotFoundError,
                     match=r"'train'.*val-00000-of-00001\.tfrecord"):
    tfrecord_io.list_shards(str(tmp_path), "train")
  (tmp_path / "train-00001-of-00002.tfrecord").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match=r"shards \[0\] of 2"):
    tfrecord_io.list_shards(str(tmp_path), "train")
  (tmp_path / "train-00000-of-00002.tfrecord").write_bytes(b"")
  (tmp_path / "train_aug-00000-of-00001.tfrecord").write_bytes(b"")
  (tmp_path / "train-00000-of-00002.tfrecord.tmp-1234").write_bytes(b"")
  assert [p.rsplit("/", 1)[1] for p in tfrecord_io.list_shards(
      str(tmp_path), "train")] == ["train-00000-of-00002.tfrecord",
                                   "train-00001-of-00002.tfrecord"]
  (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
  with pytest.raises(ValueError, match="mixes"):
    tfrecord_io.list_shards(str(tmp_path), "train")


def _shards_with_a_bad_checksum(tmp_path):
  """Two intact-length shards of 4 records; record 2 of the second has a
  flipped data byte (a bad CRC, which a header walk cannot see)."""
  paths = []
  for shard in range(2):
    path = str(tmp_path / f"train-{shard:05d}-of-00002.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(4):
        writer.write(bytes([i]) * 100)
    paths.append(path)
  data = bytearray(open(paths[1], "rb").read())
  data[2 * (12 + 100 + 4) + 12 + 50] ^= 0xFF
  with open(paths[1], "wb") as f:
    f.write(bytes(data))
  return paths


def test_a_bad_checksum_names_its_shard(tmp_path):
  paths = _shards_with_a_bad_checksum(tmp_path)
  assert all(tfrecord_io.find_truncated(p) is None for p in paths)
  tfrecord_io.note_opened(paths)
  with pytest.raises(tf.errors.DataLossError) as error:
    for _ in tf.data.TFRecordDataset(paths):
      pass
  message = tfrecord_io.explain_read_error(error.value)
  assert message.startswith(f"TFRecord shard {paths[1]} is corrupted "
                            "(corrupted record at 244)"), message
  assert paths[0] not in message
