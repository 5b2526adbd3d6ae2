"""The builders as a user runs them: official flag names, one-line errors."""

import os
import subprocess
import sys

import pytest

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _run(module, *args):
  return subprocess.run([sys.executable, "-m", f"deeplab.datasets.{module}",
                         *args], capture_output=True, text=True, env=ENV,
                        timeout=120)


def test_voc_builder_with_sbd_root_writes_train_aug(labelme_voc,
                                                    shared_fixtures,
                                                    tmp_path):
  (labelme_voc / "ImageSets/Segmentation/val.txt").write_text("")
  out = tmp_path / "records"
  result = _run(
      "build_voc2012_data",
      f"--image_folder={labelme_voc / 'JPEGImages'}",
      f"--semantic_segmentation_folder={labelme_voc / 'SegmentationClass'}",
      f"--list_folder={labelme_voc / 'ImageSets/Segmentation'}",
      f"--output_dir={out}", "--splits=train",
      f"--sbd_root={shared_fixtures / 'sbd_pyedgeeval/dataset'}",
      "--num_shards=1", "--num_workers=2")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "train_aug: 5 examples" in result.stdout
  assert sorted(os.listdir(out)) == ["train-00000-of-00001.tfrecord",
                                     "train_aug-00000-of-00001.tfrecord"]


@pytest.mark.parametrize("module,flags,named", [
    ("build_voc2012_data", ["--image_folder={missing}"], "--image_folder"),
    ("build_cityscapes_data", ["--cityscapes_root={missing}"],
     "--cityscapes_root"),
    ("build_ade20k_data", ["--train_image_folder={missing}"],
     "--train_image_folder"),
    ("build_coco_data", ["--annotation_file={missing}",
                         "--image_folder={missing}", "--split_name=val",
                         "--label_set=voc"], "--annotation_file"),
    ("build_custom_data", ["--image_folder={missing}",
                           "--semantic_segmentation_folder={missing}",
                           "--list_folder={missing}"], "--image_folder"),
    ("labelme_to_voc", ["--json_dir={missing}", "--labels_file={missing}"],
     "--json_dir"),
])
def test_bad_paths_give_one_error_line(tmp_path, module, flags, named):
  missing = tmp_path / "missing"
  result = _run(module, *[f.format(missing=missing) for f in flags],
                f"--output_dir={tmp_path / 'out'}")
  assert result.returncode != 0
  assert f"ERROR: {named}" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "out").exists()
