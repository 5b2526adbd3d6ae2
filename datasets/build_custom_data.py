"""Builds TFRecords of a user's own dataset in images/ + labels/ + lists form.

Layout (the output of `labelme_to_voc.py` is one):

  {image_folder}/{name}.jpg|.jpeg|.png    the images
  {semantic_segmentation_folder}/{name}.png  index or palette PNG labels
  {list_folder}/{split}.txt                one name per line, per split
  {classes_file}                           one class name per line, id order

The number of classes is the number of lines in `--classes_file` (a first
line `__ignore__`, as labelme writes, is dropped); label values must be
below it or the ignore label. Train on the result with
`--dataset=custom --num_classes=N` (or register a descriptor).

Usage:
  python -m deeplab.datasets.build_custom_data \\
    --image_folder=my_data/JPEGImages \\
    --semantic_segmentation_folder=my_data/SegmentationClass \\
    --list_folder=my_data/ImageSets/Segmentation \\
    --classes_file=my_data/class_names.txt --output_dir=my_data/tfrecord
"""

import os
from typing import Any, Dict, List, Optional, Sequence

from absl import flags

from deeplab.datasets import build_data
from deeplab.datasets import build_voc2012_data

FLAGS = flags.FLAGS

_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


def define_flags() -> None:
  """Defines the builder's flags (only when run as a program)."""
  flags.DEFINE_string("image_folder", None, "Folder of the images.")
  flags.DEFINE_string("semantic_segmentation_folder", None,
                      "Folder of the label PNGs.")
  flags.DEFINE_string("list_folder", None,
                      "Folder of the {split}.txt image lists.")
  flags.DEFINE_string("classes_file", None,
                      "Class names, one per line in id order (background "
                      "first). Default: class_names.txt next to "
                      "--image_folder, if present.")
  flags.DEFINE_integer("num_classes", None,
                       "Number of classes when there is no classes file.")
  build_data.define_writer_flags()
  flags.DEFINE_list("splits", None,
                    "Splits to build (default: every *.txt in --list_folder).")
  flags.DEFINE_integer("ignore_label", 255, "The void label value.")


def read_class_names(classes_file: str) -> List[str]:
  """Reads class names (one per line, id order); drops `__ignore__`.

  Raises:
    FileNotFoundError: naming the file.
    ValueError: if it names no class or repeats one.
  """
  build_data.require_file(classes_file, "classes_file")
  with open(classes_file) as f:
    names = [line.strip() for line in f if line.strip()]
  if names and names[0] == "__ignore__":
    names = names[1:]
  if not names:
    raise ValueError(f"--classes_file {classes_file} names no class.")
  if len(set(names)) != len(names):
    raise ValueError(f"--classes_file {classes_file} repeats a class name.")
  return names


def _find_image(image_folder: str, name: str) -> str:
  """The image file of `name`: the first extension present (else .jpg, so
  that the missing file is named in the error)."""
  for extension in _IMAGE_EXTENSIONS:
    path = os.path.join(image_folder, f"{name}.{extension}")
    if os.path.isfile(path):
      return path
  return os.path.join(image_folder, f"{name}.jpg")


def build_custom_dataset(image_folder: str,
                         semantic_segmentation_folder: str,
                         list_folder: str,
                         output_dir: str,
                         num_classes: int,
                         splits: Optional[Sequence[str]] = None,
                         num_shards: int = 4,
                         num_workers: int = 1,
                         skip_invalid: bool = False,
                         ignore_label: int = 255) -> List[Dict[str, Any]]:
  """Builds every listed split of a custom dataset.

  Returns:
    The `build_data.write_split` summary of each split.

  Raises:
    FileNotFoundError: naming the flag of a missing folder or list.
    ValueError: for an empty list or an invalid example (naming its files).
  """
  build_data.require_dir(image_folder, "image_folder")
  build_data.require_dir(semantic_segmentation_folder,
                         "semantic_segmentation_folder")
  if num_classes is None or num_classes < 1:
    raise ValueError("Set --classes_file (or --num_classes).")
  summaries = []
  split_files = build_voc2012_data.list_split_files(list_folder, splits)
  for split, list_path in split_files.items():
    specs = [
        build_data.ExampleSpec(
            key=name, image_path=_find_image(image_folder, name),
            label_source=os.path.join(semantic_segmentation_folder,
                                      f"{name}.png"))
        for name in build_voc2012_data.read_image_list(list_path)
    ]
    summaries.append(build_data.write_split(
        specs, build_data.read_png_label, output_dir, split,
        num_shards=num_shards, num_workers=num_workers,
        num_classes=num_classes, ignore_label=ignore_label,
        skip_invalid=skip_invalid, source=list_path))
  return summaries


def main(argv):
  del argv  # Unused.
  for flag in ("image_folder", "semantic_segmentation_folder", "list_folder"):
    if not getattr(FLAGS, flag):
      raise ValueError(f"--{flag} is required.")
  classes_file = FLAGS.classes_file
  default_classes = os.path.join(os.path.dirname(
      os.path.normpath(FLAGS.image_folder)), "class_names.txt")
  if not classes_file and not FLAGS.num_classes and os.path.isfile(
      default_classes):
    classes_file = default_classes
  num_classes = FLAGS.num_classes
  if classes_file:
    names = read_class_names(classes_file)
    num_classes = len(names)
    print(f"{num_classes} classes from {classes_file}: {', '.join(names)}")
  summaries = build_custom_dataset(
      FLAGS.image_folder, FLAGS.semantic_segmentation_folder,
      FLAGS.list_folder, FLAGS.output_dir, num_classes, splits=FLAGS.splits,
      num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
      skip_invalid=FLAGS.skip_invalid, ignore_label=FLAGS.ignore_label)
  print(build_data.format_summary(summaries))
  print(f"Train with: --dataset=custom --num_classes={num_classes} "
        f"--dataset_dir={FLAGS.output_dir}")


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
