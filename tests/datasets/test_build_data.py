"""The shared writer, driven through the VOC builder: round trip, errors."""

import os
import pathlib
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab.datasets import build_data
from deeplab.datasets import build_voc2012_data
from deeplab.datasets import tfrecord_io

# The images of the labelme fixture, as listed by `labelme_voc`'s train.txt.
VOC_NAMES = ("2011_000003", "2011_000006", "2011_000025")


def _args(root: pathlib.Path, output_dir: pathlib.Path, **kwargs):
  args = dict(
      image_folder=str(root / "JPEGImages"),
      semantic_segmentation_folder=str(root / "SegmentationClass"),
      list_folder=str(root / "ImageSets" / "Segmentation"),
      output_dir=str(output_dir))
  args.update(kwargs)
  return args


def _read_all(output_dir, split):
  records = tf.data.TFRecordDataset(
      tfrecord_io.list_shards(str(output_dir), split))
  return [tfrecord_io.parse_example(r) for r in records]


def _final_files(output_dir):
  if not output_dir.exists():
    return []
  return sorted(p.name for p in output_dir.iterdir())


@pytest.mark.parametrize("num_workers", [1, 2])
def test_round_trip_is_pixel_exact(labelme_voc, tmp_path, num_workers):
  out = tmp_path / "records"
  summaries = build_voc2012_data.build_voc_dataset(
      **_args(labelme_voc, out, num_workers=num_workers))
  assert summaries[0]["num_examples"] == 3
  assert _final_files(out) == [f"train-{i:05d}-of-00004.tfrecord"
                               for i in range(4)]
  raw = next(iter(tf.data.TFRecordDataset(str(out / _final_files(out)[0]))))
  example = tf.train.Example.FromString(raw.numpy())
  feature = example.features.feature
  assert set(feature) == {
      "image/encoded", "image/filename", "image/format", "image/height",
      "image/width", "image/segmentation/class/encoded",
      "image/segmentation/class/format"}
  assert feature["image/format"].bytes_list.value == [b"jpeg"]
  assert feature["image/segmentation/class/format"].bytes_list.value == [
      b"png"]
  parsed = _read_all(out, "train")
  # Contiguous shards keep the list order.
  assert [p["filename"].numpy().decode() for p in parsed] == list(VOC_NAMES)
  for p in parsed:
    name = p["filename"].numpy().decode()
    expected = np.array(Image.open(
        labelme_voc / "SegmentationClass" / f"{name}.png"))
    np.testing.assert_array_equal(p["label"].numpy()[..., 0], expected)
    jpeg = Image.open(labelme_voc / "JPEGImages" / f"{name}.jpg")
    assert (int(p["width"]), int(p["height"])) == jpeg.size
    assert p["image"].shape == (jpeg.size[1], jpeg.size[0], 3)
  # JPEGs are stored byte for byte.
  assert feature["image/encoded"].bytes_list.value[0] == (
      labelme_voc / "JPEGImages" / f"{VOC_NAMES[0]}.jpg").read_bytes()
  assert set(summaries[0]["label_pixels"]) >= {0, 255}


def test_rebuild_with_other_shard_count_removes_stale_shards(labelme_voc,
                                                             tmp_path):
  out = tmp_path / "records"
  build_voc2012_data.build_voc_dataset(**_args(labelme_voc, out))
  build_voc2012_data.build_voc_dataset(**_args(labelme_voc, out,
                                               num_shards=2))
  assert _final_files(out) == ["train-00000-of-00002.tfrecord",
                               "train-00001-of-00002.tfrecord"]


def test_rgb_labels_are_mapped_and_missing_label_named(shared_fixtures,
                                                       tmp_path):
  root = tmp_path / "voc"
  shutil.copytree(shared_fixtures / "datumaro/voc_dataset1", root)
  # 2007_000001 has an RGB-mode label; 2007_000002 has no label file.
  (root / "ImageSets/Segmentation/train.txt").write_text(
      "2007_000001\n2007_000002\n")
  out = tmp_path / "records"
  with pytest.raises(build_data.InvalidExampleError,
                     match=r"2007_000002\.jpg has no label"):
    build_voc2012_data.build_voc_dataset(**_args(root, out, splits=["train"]))
  assert _final_files(out) == []
  summaries = build_voc2012_data.build_voc_dataset(
      **_args(root, out, splits=["train"], skip_invalid=True))
  assert summaries[0]["num_examples"] == 1
  assert [key for key, _ in summaries[0]["skipped"]] == ["2007_000002"]
  (parsed,) = _read_all(out, "train")
  # The RGB label is all (0, 128, 0): VOC class 2, pixel for pixel.
  rgb = np.array(Image.open(root / "SegmentationClass/2007_000001.png"))
  assert (rgb == (0, 128, 0)).all()
  np.testing.assert_array_equal(parsed["label"].numpy()[..., 0],
                                np.full(rgb.shape[:2], 2))
  # A split whose every example is invalid fails even with skip_invalid.
  with pytest.raises(build_data.InvalidExampleError, match="all 1 examples"):
    build_voc2012_data.build_voc_dataset(
        **_args(root, out, splits=["test"], skip_invalid=True))


def test_size_mismatch_names_both_files_and_leaves_no_shards(labelme_voc,
                                                             tmp_path):
  label_path = labelme_voc / "SegmentationClass" / f"{VOC_NAMES[1]}.png"
  label = Image.open(label_path)
  label.crop((0, 0, 100, 80)).save(label_path)
  out = tmp_path / "records"
  with pytest.raises(build_data.InvalidExampleError) as error:
    build_voc2012_data.build_voc_dataset(**_args(labelme_voc, out))
  message = str(error.value)
  assert f"{VOC_NAMES[1]}.png is 100x80" in message
  assert f"{VOC_NAMES[1]}.jpg is 500x375" in message
  # Neither final-named shards nor temporary files are left behind.
  assert _final_files(out) == []


def test_out_of_range_label_values(labelme_voc, tmp_path):
  label_path = labelme_voc / "SegmentationClass" / f"{VOC_NAMES[2]}.png"
  ids = np.array(Image.open(label_path))
  ids[:2, :2] = 30
  Image.fromarray(ids).save(label_path)
  with pytest.raises(build_data.InvalidExampleError,
                     match=rf"{VOC_NAMES[2]}\.png has values \[30\]"):
    build_voc2012_data.build_voc_dataset(**_args(labelme_voc,
                                                 tmp_path / "o"))


def test_corrupt_jpeg_named_and_skip_invalid_builds_rest(labelme_voc,
                                                         tmp_path):
  jpeg = labelme_voc / "JPEGImages" / f"{VOC_NAMES[0]}.jpg"
  jpeg.write_bytes(jpeg.read_bytes()[:2000])  # Truncated.
  out = tmp_path / "records"
  with pytest.raises(build_data.InvalidExampleError,
                     match=rf"{VOC_NAMES[0]}\.jpg"):
    build_voc2012_data.build_voc_dataset(**_args(labelme_voc, out))
  assert _final_files(out) == []
  summaries = build_voc2012_data.build_voc_dataset(
      **_args(labelme_voc, out, skip_invalid=True, num_workers=2))
  assert summaries[0]["num_examples"] == 2
  assert [p["filename"].numpy().decode()
          for p in _read_all(out, "train")] == list(VOC_NAMES[1:])


def test_png_image_is_reencoded_as_jpeg(labelme_voc, tmp_path):
  name = VOC_NAMES[0]
  image = Image.open(labelme_voc / "JPEGImages" / f"{name}.jpg")
  image.save(labelme_voc / "JPEGImages" / f"{name}.png")
  (labelme_voc / "ImageSets/Segmentation/train.txt").write_text(f"{name}\n")
  out = tmp_path / "records"
  build_voc2012_data.build_voc_dataset(
      **_args(labelme_voc, out, image_format="png", num_shards=1))
  (parsed,) = _read_all(out, "train")
  assert parsed["image"].shape == (image.size[1], image.size[0], 3)
  raw = next(iter(tf.data.TFRecordDataset(str(out / _final_files(out)[0]))))
  encoded = tf.train.Example.FromString(raw.numpy()).features.feature[
      "image/encoded"].bytes_list.value[0]
  assert encoded[:2] == b"\xff\xd8"  # JPEG magic.


def test_empty_list_and_missing_folders(labelme_voc, tmp_path):
  list_path = labelme_voc / "ImageSets/Segmentation/train.txt"
  list_path.write_text("\n")
  with pytest.raises(ValueError, match=r"'train'.*train\.txt.*empty"):
    build_voc2012_data.build_voc_dataset(**_args(labelme_voc, tmp_path / "o"))
  args = _args(labelme_voc, tmp_path / "o")
  args["image_folder"] = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="--image_folder.*missing"):
    build_voc2012_data.build_voc_dataset(**args)
  with pytest.raises(FileNotFoundError, match="--splits.*'val'"):
    build_voc2012_data.build_voc_dataset(
        **_args(labelme_voc, tmp_path / "o", splits=["val"]))


def test_write_split_direct_api(tmp_path):
  """A builder needs only specs and a read_label function."""
  image_path = tmp_path / "a.png"
  Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(image_path)
  specs = [build_data.ExampleSpec("a", str(image_path), "unused")]
  summary = build_data.write_split(specs, _read_constant_label,
                                   str(tmp_path / "o"), "x", num_shards=1,
                                   num_classes=2)
  assert summary["num_examples"] == 1
  assert summary["label_pixels"] == {1: 24}
  with pytest.raises(ValueError, match="twice"):
    build_data.write_split(specs * 2, _read_constant_label,
                           str(tmp_path / "o"), "x", num_shards=1)
  assert os.listdir(tmp_path / "o") == ["x-00000-of-00001.tfrecord"]


def _read_constant_label(spec):
  del spec
  return np.ones((4, 6), np.uint8)


def test_unpicklable_read_label_is_explained(tmp_path):
  image_path = tmp_path / "a.png"
  Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(image_path)
  specs = [build_data.ExampleSpec("a", str(image_path), "unused")]
  with pytest.raises(TypeError, match="top-level function"):
    build_data.write_split(specs, lambda spec: np.ones((4, 6), np.uint8),
                           str(tmp_path / "o"), "x", num_shards=1,
                           num_workers=2)
