"""Custom builder, on the output of labelme_to_voc."""

import numpy as np
from PIL import Image
import pytest

from deeplab.datasets import build_custom_data
from deeplab.datasets import build_data
from deeplab.datasets import labelme_to_voc


def test_labelme_export_builds_pixel_exact(shared_fixtures, tmp_path,
                                           read_split):
  src = shared_fixtures / "labelme/semantic_segmentation"
  voc = tmp_path / "voc"
  labelme_to_voc.convert_labelme_dir(str(src / "data_annotated"),
                                     str(src / "labels.txt"), str(voc))
  names = build_custom_data.read_class_names(str(voc / "class_names.txt"))
  assert len(names) == 21 and names[0] == "_background_"
  out = tmp_path / "records"
  summaries = build_custom_data.build_custom_dataset(
      str(voc / "JPEGImages"), str(voc / "SegmentationClass"),
      str(voc / "ImageSets/Segmentation"), str(out), num_classes=len(names),
      num_shards=2)
  assert summaries[0]["split"] == "trainval"
  records = read_split(out, "trainval")
  for name in ("2011_000003", "2011_000006", "2011_000025"):
    np.testing.assert_array_equal(
        records[name][1],
        np.array(Image.open(voc / "SegmentationClass" / f"{name}.png")))


def test_class_set_is_enforced(labelme_voc, tmp_path):
  # labelme's VOC export uses ids up to 18; a 3-class set rejects them.
  with pytest.raises(build_data.InvalidExampleError,
                     match=r"2011_000003\.png has values \[5, 15\]"):
    build_custom_data.build_custom_dataset(
        str(labelme_voc / "JPEGImages"),
        str(labelme_voc / "SegmentationClass"),
        str(labelme_voc / "ImageSets/Segmentation"), str(tmp_path / "o"),
        num_classes=3)
  classes = tmp_path / "classes.txt"
  classes.write_text("__ignore__\n")
  with pytest.raises(ValueError, match="names no class"):
    build_custom_data.read_class_names(str(classes))
