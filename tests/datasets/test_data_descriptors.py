"""The dataset registry: official numbers, custom datasets, errors."""

import json

import numpy as np
import pytest

from deeplab.datasets import data_descriptors as dd


@pytest.mark.parametrize("name, splits, num_classes, ignore", [
    ("pascal_voc_seg", {"train": 1464, "train_aug": 10582, "trainval": 2913,
                        "val": 1449}, 21, 255),
    ("cityscapes", {"train_fine": 2975, "val_fine": 500, "test_fine": 1525,
                    "train_coarse": 22973}, 19, 255),
    ("ade20k", {"train": 20210, "val": 2000}, 151, 0),
    ("coco", {"train": 118287, "val": 5000}, 81, 255),
])
def test_official_numbers(name, splits, num_classes, ignore):
  d = dd.get_dataset_descriptor(name)
  assert d.splits_to_sizes == splits
  assert d.num_classes == num_classes
  assert d.ignore_label == ignore
  assert len(d.class_names) == num_classes
  assert d.colormap.shape == (256, 3) and d.colormap.dtype == np.uint8


def test_voc_class_names():
  names = dd.get_dataset_descriptor("pascal_voc_seg").class_names
  assert names[0] == "background" and names[15] == "person"
  assert names[20] == "tvmonitor"


def test_unknown_dataset_lists_known_ones():
  with pytest.raises(ValueError) as error:
    dd.get_dataset_descriptor("pascal_voc")
  message = str(error.value)
  assert "pascal_voc" in message
  for name in ("pascal_voc_seg", "cityscapes", "ade20k", "coco", "demo"):
    assert name in message


def test_demo_and_people_seg_registered():
  demo = dd.get_dataset_descriptor("demo")
  assert demo.class_names[0] == "background"
  assert demo.num_classes == len(demo.class_names) >= 5
  assert demo.ignore_label == 255 and set(demo.splits_to_sizes) == {
      "train", "val"}
  people = dd.get_dataset_descriptor("people_seg")
  assert people.class_names == ("background", "person")


def test_custom_descriptor_register_and_errors():
  d = dd.make_custom_descriptor("my_test_dataset", 3,
                                splits_to_sizes={"train": 10})
  assert d.class_names == ("class_0", "class_1", "class_2")
  assert dd.register_dataset(d) is d
  try:
    assert dd.get_dataset_descriptor("my_test_dataset") is d
    assert "my_test_dataset" in dd.list_datasets()
    with pytest.raises(ValueError, match="already registered"):
      dd.register_dataset(d)
  finally:
    dd._REGISTRY.pop("my_test_dataset")  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="2 class names for 3 classes"):
    dd.make_custom_descriptor("x", 3, class_names=("a", "b"))
  with pytest.raises(ValueError, match="no split 'test'"):
    d.num_examples("test")


def test_descriptor_is_frozen():
  d = dd.get_dataset_descriptor("pascal_voc_seg")
  with pytest.raises(AttributeError):
    d.num_classes = 3  # pytype: disable=not-writable


def test_coco_ids_and_names_match_panopticapi(shared_fixtures):
  categories = json.loads(
      (shared_fixtures / "coco_panopticapi/panoptic_coco_categories.json")
      .read_text())
  things = [(c["id"], c["name"]) for c in categories if c["isthing"]]
  assert things == list(zip(dd.COCO_CATEGORY_IDS, dd.COCO_THING_NAMES))


def test_ade20k_names_follow_object_info(shared_fixtures):
  lines = (shared_fixtures / "ade20k_sceneparsing/objectInfo150.csv"
           ).read_text().splitlines()[1:]
  for line, name in zip(lines, dd.ADE20K_CLASS_NAMES[1:]):
    first_token = line.split(",")[-1].split(";")[0]
    assert name.split()[0] == first_token, (line, name)
