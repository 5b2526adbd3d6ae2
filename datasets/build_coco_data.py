"""Builds semantic-segmentation TFRecords from COCO instance annotations.

Reads a COCO 2017 `instances_{split}2017.json` with pycocotools and the
images it lists, and paints one class-id label per image:

  * `--label_set=coco`: the 80 thing categories, as contiguous ids 1..80 in
    COCO's category-id order (`data_descriptors.COCO_CATEGORY_IDS`), 0 the
    background; 81 classes, the `coco` descriptor.
  * `--label_set=voc`: only the 20 PASCAL VOC categories, with VOC's ids
    (airplane -> 1 aeroplane, ..., tv -> 20 tvmonitor); every other category
    is background; 21 classes, the `pascal_voc_seg` descriptor.
  * `--label_set=person`: person (1) against background (0); the
    `people_seg` descriptor.

Objects are painted in annotation order (a later object covers an earlier
one); crowd regions (`iscrowd=1`) of kept categories are painted last, with
the ignore label 255. Annotations with an empty segmentation are skipped
with a warning (pycocotools cannot decode them).

Usage:
  python -m deeplab.datasets.build_coco_data \\
    --annotation_file=annotations/instances_val2017.json \\
    --image_folder=val2017 --split_name=val --label_set=voc \\
    --output_dir=/data/coco_voc/tfrecord
"""

import json
import os
from typing import Any, Dict, List, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np

from deeplab.datasets import build_data
from deeplab.datasets import data_descriptors

FLAGS = flags.FLAGS

IGNORE_LABEL = 255

# COCO category id -> PASCAL VOC class id, for the 20 shared categories.
COCO_TO_VOC = {
    5: 1,    # airplane -> aeroplane
    2: 2,    # bicycle
    16: 3,   # bird
    9: 4,    # boat
    44: 5,   # bottle
    6: 6,    # bus
    3: 7,    # car
    17: 8,   # cat
    62: 9,   # chair
    21: 10,  # cow
    67: 11,  # dining table -> diningtable
    18: 12,  # dog
    19: 13,  # horse
    4: 14,   # motorcycle -> motorbike
    1: 15,   # person
    64: 16,  # potted plant -> pottedplant
    20: 17,  # sheep
    63: 18,  # couch -> sofa
    7: 19,   # train
    72: 20,  # tv -> tvmonitor
}
COCO_TO_CONTIGUOUS = {category_id: i + 1 for i, category_id in
                      enumerate(data_descriptors.COCO_CATEGORY_IDS)}
# People segmentation (the `people_seg` descriptor): person vs background.
COCO_TO_PERSON = {1: 1}
LABEL_SETS = {"voc": (COCO_TO_VOC, 21), "coco": (COCO_TO_CONTIGUOUS, 81),
              "person": (COCO_TO_PERSON, 2)}


def define_flags() -> None:
  """Defines the builder's flags (only when run as a program)."""
  flags.DEFINE_string("annotation_file", None,
                      "COCO instances JSON, e.g. instances_train2017.json.")
  flags.DEFINE_string("image_folder", None,
                      "Folder of the images the JSON lists (file_name).")
  flags.DEFINE_string("split_name", "train", "Name of the output split.")
  flags.DEFINE_enum("label_set", "coco", sorted(LABEL_SETS),
                    "coco: 80 thing classes + background; voc: the 20 VOC "
                    "categories + background; person: person vs background "
                    "(dataset people_seg).")
  build_data.define_writer_flags()
  flags.DEFINE_boolean("skip_empty", False,
                       "Skip images with no kept object (all background).")


# A label source: (height, width, ((segmentation, value), ...)), picklable.
CocoLabelSource = Tuple[int, int, Tuple[Tuple[Any, int], ...]]


def _segmentation_rle(segmentation, height: int, width: int):
  """pycocotools RLE of a polygon list, uncompressed or compressed RLE."""
  from pycocotools import mask as mask_utils  # pylint: disable=g-import-not-at-top
  if isinstance(segmentation, list):  # Polygons: merge their parts.
    return mask_utils.merge(
        mask_utils.frPyObjects(segmentation, height, width))
  if isinstance(segmentation.get("counts"), list):  # Uncompressed RLE.
    return mask_utils.frPyObjects(segmentation, height, width)
  return segmentation


def annotation_mask(segmentation, height: int, width: int) -> np.ndarray:
  """bool [height, width] mask of one COCO segmentation."""
  from pycocotools import mask as mask_utils  # pylint: disable=g-import-not-at-top
  return mask_utils.decode(
      _segmentation_rle(segmentation, height, width)).astype(bool)


def render_label(source: CocoLabelSource) -> np.ndarray:
  """Paints the (segmentation, value) pairs in order into a uint8 label."""
  height, width, objects = source
  label = np.zeros((height, width), dtype=np.uint8)
  for segmentation, value in objects:
    label[annotation_mask(segmentation, height, width)] = value
  return label


def read_coco_label(spec: build_data.ExampleSpec) -> np.ndarray:
  """`read_label`: renders the annotations held in `spec.label_source`."""
  return render_label(spec.label_source)


class _LabelSourceName(tuple):
  """A label source whose `str()` names the image and the JSON (errors)."""

  def __new__(cls, source: CocoLabelSource, name: str):
    instance = super().__new__(cls, source)
    instance.name = name
    return instance

  def __getnewargs__(self):
    return (tuple(self), self.name)

  def __str__(self):
    return self.name


def list_coco_examples(annotation_file: str, image_folder: str,
                       label_set: str,
                       skip_empty: bool = False
                       ) -> List[build_data.ExampleSpec]:
  """Lists one spec per image of the JSON, in the JSON's image order.

  Args:
    annotation_file: COCO instances JSON.
    image_folder: Folder of the images (`file_name`).
    label_set: `coco` or `voc`.
    skip_empty: Leave out images with no kept object.

  Returns:
    Specs whose label source holds the image size and the kept
    (segmentation, class id) pairs, crowd regions last as 255.

  Raises:
    ValueError: for an unknown label set or a JSON without `images`.
  """
  from pycocotools import coco  # pylint: disable=g-import-not-at-top
  if label_set not in LABEL_SETS:
    raise ValueError(f"--label_set must be one of {sorted(LABEL_SETS)}, got "
                     f"{label_set!r}.")
  mapping = LABEL_SETS[label_set][0]
  try:
    dataset = coco.COCO(annotation_file)
  except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as e:
    raise ValueError(f"--annotation_file {annotation_file} is not a COCO "
                     f"instances JSON: {type(e).__name__}: {e}") from e
  if not dataset.dataset.get("images"):
    raise ValueError(f"--annotation_file {annotation_file} lists no images.")
  specs = []
  for info in dataset.dataset["images"]:
    image_id = info["id"]
    objects, crowds = [], []
    for annotation in dataset.imgToAnns.get(image_id, []):
      value = mapping.get(annotation["category_id"])
      if value is None:
        continue
      segmentation = annotation.get("segmentation")
      if not segmentation:
        logging.warning("Skipping annotation %s of image %s (%s): empty "
                        "segmentation.", annotation.get("id"),
                        info["file_name"], annotation_file)
        continue
      if annotation.get("iscrowd"):
        crowds.append((segmentation, IGNORE_LABEL))
      else:
        objects.append((segmentation, value))
    if skip_empty and not objects:
      continue
    source = (int(info["height"]), int(info["width"]),
              tuple(objects + crowds))
    image_path = os.path.join(image_folder, info["file_name"])
    specs.append(build_data.ExampleSpec(
        key=os.path.splitext(info["file_name"])[0],
        image_path=image_path,
        label_source=_LabelSourceName(
            source, f"annotations of {info['file_name']} (image id "
            f"{image_id}, {info['width']}x{info['height']}) in "
            f"{annotation_file}")))
  return specs


def build_coco_dataset(annotation_file: str,
                       image_folder: str,
                       output_dir: str,
                       split_name: str = "train",
                       label_set: str = "coco",
                       num_shards: int = 4,
                       num_workers: int = 1,
                       skip_invalid: bool = False,
                       skip_empty: bool = False) -> Dict[str, Any]:
  """Builds one split from a COCO instances JSON.

  Returns:
    The `build_data.write_split` summary.

  Raises:
    FileNotFoundError: naming the flag of a missing file or folder.
    ValueError: for a bad JSON, or an invalid example (see `write_split`).
  """
  build_data.require_file(annotation_file, "annotation_file")
  build_data.require_dir(image_folder, "image_folder")
  specs = list_coco_examples(annotation_file, image_folder, label_set,
                             skip_empty)
  return build_data.write_split(
      specs, read_coco_label, output_dir, split_name, num_shards=num_shards,
      num_workers=num_workers, num_classes=LABEL_SETS[label_set][1],
      ignore_label=IGNORE_LABEL, skip_invalid=skip_invalid,
      source=annotation_file)


def main(argv: Sequence[str]):
  del argv  # Unused.
  summary = build_coco_dataset(
      FLAGS.annotation_file, FLAGS.image_folder, FLAGS.output_dir,
      split_name=FLAGS.split_name, label_set=FLAGS.label_set,
      num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
      skip_invalid=FLAGS.skip_invalid, skip_empty=FLAGS.skip_empty)
  print(build_data.format_summary([summary]))


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
