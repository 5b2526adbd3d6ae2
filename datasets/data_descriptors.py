"""The dataset registry: split sizes, classes and ignore label per dataset.

Apps look a dataset up by name (`--dataset=pascal_voc_seg`) and read from its
descriptor what the model and the input pipeline need (number of classes,
ignore label, colormap). The official datasets are registered here with the
numbers of official research/deeplab; a user's own dataset is one
`register_dataset(make_custom_descriptor(...))` call.

Example:
  descriptor = get_dataset_descriptor("pascal_voc_seg")
  descriptor.num_classes        # 21
  descriptor.splits_to_sizes    # {"train": 1464, ...}
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from deeplab.datasets import colormaps


@dataclasses.dataclass(frozen=True)
class DatasetDescriptor:
  """What a dataset is, independent of where its files are.

  Attributes:
    name: Registry key, e.g. `pascal_voc_seg`.
    splits_to_sizes: Number of images per split, e.g. {"train": 1464}. Empty
      when unknown (a custom dataset before it is built).
    num_classes: Number of classes, background included when the dataset has
      one; the model's number of outputs.
    ignore_label: Label value excluded from loss and metrics (and used to pad
      labels).
    class_names: One name per class id, `num_classes` of them.
    colormap_name: Name of the colormap in `deeplab.datasets.colormaps`.
  """

  name: str
  splits_to_sizes: Mapping[str, int] = dataclasses.field(hash=False)
  num_classes: int
  ignore_label: int
  class_names: Tuple[str, ...]
  colormap_name: str = "pascal"

  def __post_init__(self):
    if self.num_classes < 1:
      raise ValueError(f"Dataset {self.name!r}: num_classes must be positive, "
                       f"got {self.num_classes}.")
    object.__setattr__(self, "splits_to_sizes", dict(self.splits_to_sizes))
    object.__setattr__(self, "class_names", tuple(self.class_names))
    if len(self.class_names) != self.num_classes:
      raise ValueError(
          f"Dataset {self.name!r}: {len(self.class_names)} class names for "
          f"{self.num_classes} classes.")
    if self.colormap_name not in colormaps.COLORMAP_NAMES:
      raise ValueError(
          f"Dataset {self.name!r}: unknown colormap {self.colormap_name!r}; "
          f"known: {list(colormaps.COLORMAP_NAMES)}.")

  @property
  def colormap(self) -> np.ndarray:
    """uint8 [256, 3] colours indexed by class id (a fresh copy)."""
    return colormaps.get_colormap(self.colormap_name)

  def num_examples(self, split: str) -> int:
    """Number of images in `split`; ValueError naming the known splits."""
    if split not in self.splits_to_sizes:
      raise ValueError(
          f"Dataset {self.name!r} has no split {split!r}; known splits: "
          f"{sorted(self.splits_to_sizes)}.")
    return self.splits_to_sizes[split]


# === Class names ===

PASCAL_VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus",
    "car", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
    "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

# Cityscapes trainIds 0..18 (labelIds map to these through
# cityscapesscripts' `helpers.labels`; the rest become 255).
CITYSCAPES_CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)

# ADE20K SceneParsing (ADEChallengeData2016, `objectInfo150.csv` order).
# Id 0 is "other", the ignore label.
ADE20K_CLASS_NAMES = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road",
    "bed", "windowpane", "grass", "cabinet", "sidewalk", "person", "earth",
    "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill",
    "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight",
    "booth", "television receiver", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food",
    "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle",
    "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)

# COCO 2017 "thing" categories; class id i (1..80) is COCO_CATEGORY_IDS[i-1].
COCO_THING_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
    "truck", "boat", "traffic light", "fire hydrant", "stop sign",
    "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
# COCO's sparse category ids (1..90 with gaps), in class-id order.
COCO_CATEGORY_IDS = tuple(
    list(range(1, 12)) + list(range(13, 26)) + [27, 28] +
    list(range(31, 45)) + list(range(46, 66)) + [67, 70] +
    list(range(72, 83)) + list(range(84, 91)))
COCO_CLASS_NAMES = ("background",) + COCO_THING_NAMES

# The bundled demo (`deeplab.datasets.build_demo_data`): each object class is
# a shape family with a characteristic photo texture.
DEMO_CLASS_NAMES = ("background", "ellipse", "rectangle", "triangle", "star")
DEMO_SPLITS_TO_SIZES = {"train": 1000, "val": 200}


# === Registry ===

_REGISTRY: Dict[str, DatasetDescriptor] = {}


def register_dataset(descriptor: DatasetDescriptor,
                     overwrite: bool = False) -> DatasetDescriptor:
  """Adds a descriptor to the registry, under `descriptor.name`.

  Args:
    descriptor: The dataset to register.
    overwrite: Replace an existing entry of the same name instead of failing.

  Returns:
    The descriptor, so that registration can be used inline.

  Raises:
    ValueError: if the name is taken and `overwrite` is False.
  """
  if not isinstance(descriptor, DatasetDescriptor):
    raise TypeError(f"register_dataset expects a DatasetDescriptor, got "
                    f"{type(descriptor).__name__}.")
  if descriptor.name in _REGISTRY and not overwrite:
    raise ValueError(f"Dataset {descriptor.name!r} is already registered; "
                     "pass overwrite=True to replace it.")
  _REGISTRY[descriptor.name] = descriptor
  return descriptor


def get_dataset_descriptor(name: str) -> DatasetDescriptor:
  """Looks a dataset up by name.

  Raises:
    ValueError: naming the unknown dataset and listing the known ones.
  """
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(
        f"Unknown dataset {name!r} (--dataset); known datasets: "
        f"{', '.join(list_datasets())}.") from None


def list_datasets() -> List[str]:
  """Names of the registered datasets, sorted."""
  return sorted(_REGISTRY)


def make_custom_descriptor(
    name: str,
    num_classes: int,
    class_names: Optional[Sequence[str]] = None,
    splits_to_sizes: Optional[Mapping[str, int]] = None,
    ignore_label: int = 255,
    colormap_name: str = "pascal") -> DatasetDescriptor:
  """Describes a user's own dataset (register it with `register_dataset`).

  Args:
    name: Registry key.
    num_classes: Number of classes, background included.
    class_names: One name per class; defaults to `class_0`, `class_1`, ...
    splits_to_sizes: Images per split, if known.
    ignore_label: Label value to ignore (255 as in VOC).
    colormap_name: Colormap used to visualise labels.

  Returns:
    A DatasetDescriptor (not yet registered).
  """
  if class_names is None:
    class_names = tuple(f"class_{i}" for i in range(num_classes))
  return DatasetDescriptor(
      name=name,
      splits_to_sizes=dict(splits_to_sizes or {}),
      num_classes=num_classes,
      ignore_label=ignore_label,
      class_names=tuple(class_names),
      colormap_name=colormap_name)


register_dataset(DatasetDescriptor(
    name="pascal_voc_seg",
    splits_to_sizes={"train": 1464, "train_aug": 10582, "trainval": 2913,
                     "val": 1449},
    num_classes=21,
    ignore_label=255,
    class_names=PASCAL_VOC_CLASS_NAMES,
    colormap_name="pascal"))

register_dataset(DatasetDescriptor(
    name="cityscapes",
    splits_to_sizes={"train_fine": 2975, "val_fine": 500, "test_fine": 1525,
                     "train_coarse": 22973},
    num_classes=19,
    ignore_label=255,
    class_names=CITYSCAPES_CLASS_NAMES,
    colormap_name="cityscapes"))

register_dataset(DatasetDescriptor(
    name="ade20k",
    splits_to_sizes={"train": 20210, "val": 2000},
    num_classes=151,
    ignore_label=0,
    class_names=ADE20K_CLASS_NAMES,
    colormap_name="ade20k"))

register_dataset(DatasetDescriptor(
    name="coco",
    splits_to_sizes={"train": 118287, "val": 5000},
    num_classes=81,
    ignore_label=255,
    class_names=COCO_CLASS_NAMES,
    colormap_name="pascal"))

# Person vs background: build it from COCO with
# `build_coco_data --label_set=person`, or from your own labelme annotations
# (labels.txt: __ignore__, _background_, person) with labelme_to_voc and
# build_custom_data.
register_dataset(make_custom_descriptor(
    name="people_seg",
    num_classes=2,
    class_names=("background", "person")))

register_dataset(DatasetDescriptor(
    name="demo",
    splits_to_sizes=DEMO_SPLITS_TO_SIZES,
    num_classes=len(DEMO_CLASS_NAMES),
    ignore_label=255,
    class_names=DEMO_CLASS_NAMES,
    colormap_name="pascal"))
