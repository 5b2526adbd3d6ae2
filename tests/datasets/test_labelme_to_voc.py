"""labelme JSON -> VOC palette PNGs, against labelme's own labelme2voc PNGs."""

import json
import shutil

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import labelme_to_voc

NAMES = ("2011_000003", "2011_000006", "2011_000025")


@pytest.mark.parametrize("kind", ["semantic_segmentation",
                                  "instance_segmentation"])
def test_matches_labelme2voc(shared_fixtures, tmp_path, kind):
  root = shared_fixtures / "labelme" / kind
  out = tmp_path / "voc"
  names = labelme_to_voc.convert_labelme_dir(
      str(root / "data_annotated"), str(root / "labels.txt"), str(out))
  assert names == list(NAMES)
  for name in NAMES:
    ours = Image.open(out / "SegmentationClass" / f"{name}.png")
    theirs = Image.open(root / "data_dataset_voc/SegmentationClass" /
                        f"{name}.png")
    assert ours.mode == "P"
    assert ours.getpalette()[:63] == theirs.getpalette()[:63]
    ours, theirs = np.array(ours), np.array(theirs)
    assert 255 in theirs or name == "2011_000025"  # __ignore__ shapes.
    # Pillow 13 rasterises one polygon vertex of 2011_000006 one pixel
    # differently from the Pillow labelme used; every other pixel matches.
    assert (ours != theirs).sum() <= (1 if name == "2011_000006" else 0)
    assert (out / "JPEGImages" / f"{name}.jpg").read_bytes() == (
        root / "data_annotated" / f"{name}.jpg").read_bytes()
  class_names = (out / "class_names.txt").read_text().split()
  assert class_names == (root / "data_dataset_voc/class_names.txt"
                         ).read_text().split()
  assert (out / "ImageSets/Segmentation/trainval.txt").read_text().split() == (
      list(NAMES))


def test_later_shapes_win_and_image_path_cannot_escape(shared_fixtures,
                                                       tmp_path):
  src = shared_fixtures / "labelme/semantic_segmentation/data_annotated"
  work = tmp_path / "deep" / "json"
  work.mkdir(parents=True)
  # The image lives outside json_dir; imagePath climbs up to it.
  shutil.copy(src / f"{NAMES[0]}.jpg", tmp_path / "escape.jpg")
  annotation = json.loads((src / f"{NAMES[0]}.json").read_text())
  annotation["imagePath"] = "../../escape.jpg"
  annotation["shapes"] = [
      {"label": "person", "points": [[10, 10], [60, 40]],
       "shape_type": "rectangle"},
      {"label": "bottle", "points": [[30, 20], [90, 20], [90, 80], [30, 80]],
       "shape_type": "polygon"},
      {"label": "__ignore__", "points": [[0, 0], [5, 5]],
       "shape_type": "rectangle"},
  ]
  (work / "x.json").write_text(json.dumps(annotation))
  labels = tmp_path / "labels.txt"
  labels.write_text("__ignore__\n_background_\nperson\nbottle\n")
  out = tmp_path / "deep" / "out"
  labelme_to_voc.convert_labelme_dir(str(work), str(labels), str(out))
  label = np.array(Image.open(out / "SegmentationClass/x.png"))
  assert label[15, 15] == 1 and label[30, 40] == 2 and label[2, 2] == 255
  assert label[100, 100] == 0
  # Only the output folder and the inputs exist: nothing written outside.
  written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                   if p.is_file())
  assert written == sorted([
      "escape.jpg", "labels.txt", "deep/json/x.json",
      "deep/out/JPEGImages/x.jpg", "deep/out/SegmentationClass/x.png",
      "deep/out/ImageSets/Segmentation/trainval.txt",
      "deep/out/class_names.txt"])


def test_bad_inputs_name_the_file(shared_fixtures, tmp_path):
  src = shared_fixtures / "labelme/semantic_segmentation"
  work = tmp_path / "json"
  shutil.copytree(src / "data_annotated", work)
  annotation = json.loads((work / f"{NAMES[1]}.json").read_text())
  annotation["shapes"][0]["label"] = "unicorn"
  (work / f"{NAMES[1]}.json").write_text(json.dumps(annotation))
  with pytest.raises(ValueError, match=rf"{NAMES[1]}\.json.*'unicorn'"):
    labelme_to_voc.convert_labelme_dir(str(work), str(src / "labels.txt"),
                                       str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()  # Checked before writing.
  (work / f"{NAMES[1]}.jpg").unlink()
  with pytest.raises(FileNotFoundError, match=rf"{NAMES[1]}\.json: image"):
    labelme_to_voc.convert_labelme_dir(str(work), str(src / "labels.txt"),
                                       str(tmp_path / "out"))
