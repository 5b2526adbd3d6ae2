"""Builds PASCAL VOC 2012 segmentation TFRecords (official format).

Reads the VOC layout:

  JPEGImages/{name}.jpg
  SegmentationClass/{name}.png      palette PNGs (or SegmentationClassRaw/,
                                    greyscale index PNGs; both work)
  ImageSets/Segmentation/{split}.txt  one name per line

and writes `{output_dir}/{split}-{i:05d}-of-{num_shards:05d}.tfrecord` with
the shared writer (`deeplab.datasets.build_data`). Palette labels are read as
indices, never as colours; RGB colour labels are mapped through the VOC
palette.

Usage:
  python -m deeplab.datasets.build_voc2012_data \\
    --image_folder=VOCdevkit/VOC2012/JPEGImages \\
    --semantic_segmentation_folder=VOCdevkit/VOC2012/SegmentationClass \\
    --list_folder=VOCdevkit/VOC2012/ImageSets/Segmentation \\
    --output_dir=tfrecord --num_workers=2

`train_aug` (VOC train + SBD, minus VOC val) belongs in a separate SBD
builder: it lists `ExampleSpec`s whose label source is an SBD `.mat` file,
passes a `read_label` for those, and calls the same `write_split`.
"""

import os
from typing import Any, Dict, List, Optional, Sequence

from absl import app
from absl import flags

from deeplab.datasets import build_data

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the official flags (only when run as a program, so that
  importing this module as a library defines no flags)."""
  flags.DEFINE_string("image_folder", "./VOCdevkit/VOC2012/JPEGImages",
                      "Folder of the VOC images.")
  flags.DEFINE_string(
      "semantic_segmentation_folder",
      "./VOCdevkit/VOC2012/SegmentationClass",
      "Folder of the label PNGs (SegmentationClass palette PNGs or "
      "SegmentationClassRaw index PNGs).")
  flags.DEFINE_string("list_folder",
                      "./VOCdevkit/VOC2012/ImageSets/Segmentation",
                      "Folder of the {split}.txt image lists.")
  flags.DEFINE_string("output_dir", "./tfrecord",
                      "Folder for the TFRecord shards.")
  flags.DEFINE_integer("num_shards", 4, "Shards per split.")
  flags.DEFINE_integer("num_workers", 1,
                       "Processes that read and encode examples (1: none).")
  flags.DEFINE_boolean("skip_invalid", False,
                       "Log and skip invalid examples instead of failing.")
  flags.DEFINE_list("splits", None,
                    "Splits to build (default: every *.txt in --list_folder).")
  flags.DEFINE_string("image_format", "jpg", "Image file extension.")
  flags.DEFINE_string("label_format", "png", "Label file extension.")
  flags.DEFINE_integer("num_classes", 21,
                       "Label values must be below this or the ignore label.")
  flags.DEFINE_integer("ignore_label", 255, "The void label value.")


def _require_dir(path: str, flag: str) -> None:
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"--{flag}: folder not found: {path!r}.")


def list_split_files(list_folder: str,
                     splits: Optional[Sequence[str]] = None) -> Dict[str, str]:
  """Maps split name -> list file.

  Args:
    list_folder: Folder of `{split}.txt` files.
    splits: Splits to take; None takes every `*.txt`.

  Raises:
    FileNotFoundError: naming the flag and path, for a missing folder or
      list file, or a folder without lists.
  """
  _require_dir(list_folder, "list_folder")
  if splits is None:
    names = sorted(n[:-4] for n in os.listdir(list_folder)
                   if n.endswith(".txt"))
    if not names:
      raise FileNotFoundError(
          f"--list_folder {list_folder} holds no {{split}}.txt lists.")
    splits = names
  files = {}
  for split in splits:
    path = os.path.join(list_folder, f"{split}.txt")
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"--splits: no list file for split {split!r} (expected {path}).")
    files[split] = path
  return files


def read_image_list(list_path: str) -> List[str]:
  """Reads a VOC image list: the first token of every non-blank line."""
  with open(list_path) as f:
    return [line.split()[0] for line in f if line.strip()]


def list_voc_examples(
    list_path: str, image_folder: str, label_folder: str,
    image_format: str = "jpg",
    label_format: str = "png") -> List[build_data.ExampleSpec]:
  """One `ExampleSpec` per name in a VOC list (label source: a PNG path)."""
  return [
      build_data.ExampleSpec(
          key=name,
          image_path=os.path.join(image_folder, f"{name}.{image_format}"),
          label_source=os.path.join(label_folder, f"{name}.{label_format}"))
      for name in read_image_list(list_path)
  ]


def build_voc_dataset(image_folder: str,
                      semantic_segmentation_folder: str,
                      list_folder: str,
                      output_dir: str,
                      num_shards: int = 4,
                      splits: Optional[Sequence[str]] = None,
                      num_workers: int = 1,
                      skip_invalid: bool = False,
                      num_classes: Optional[int] = 21,
                      ignore_label: int = 255,
                      image_format: str = "jpg",
                      label_format: str = "png") -> List[Dict[str, Any]]:
  """Builds the TFRecords of a dataset in VOC layout, one split at a time.

  Args:
    image_folder: Folder of `{name}.{image_format}` images.
    semantic_segmentation_folder: Folder of `{name}.{label_format}` labels.
    list_folder: Folder of `{split}.txt` lists.
    output_dir: Folder for the shards.
    num_shards: Shards per split.
    splits: Splits to build; None builds every list in `list_folder`.
    num_workers: Encoding processes (1: in this process).
    skip_invalid: Log and skip invalid examples instead of failing.
    num_classes: Label values must be below this or `ignore_label`
      (None: unchecked).
    ignore_label: The void label value.
    image_format: Image file extension.
    label_format: Label file extension.

  Returns:
    The `build_data.write_split` summary of each split.

  Raises:
    FileNotFoundError: naming the flag and path of a missing folder or list.
    ValueError: for an empty list (naming it) or an invalid example (naming
      its files), see `build_data.write_split`.
  """
  _require_dir(image_folder, "image_folder")
  _require_dir(semantic_segmentation_folder, "semantic_segmentation_folder")
  split_files = list_split_files(list_folder, splits)
  summaries = []
  for split, list_path in split_files.items():
    specs = list_voc_examples(list_path, image_folder,
                              semantic_segmentation_folder, image_format,
                              label_format)
    summaries.append(build_data.write_split(
        specs, build_data.read_png_label, output_dir, split,
        num_shards=num_shards, num_workers=num_workers,
        num_classes=num_classes, ignore_label=ignore_label,
        skip_invalid=skip_invalid, source=list_path))
  return summaries


def main(argv):
  del argv  # Unused.
  summaries = build_voc_dataset(
      image_folder=FLAGS.image_folder,
      semantic_segmentation_folder=FLAGS.semantic_segmentation_folder,
      list_folder=FLAGS.list_folder,
      output_dir=FLAGS.output_dir,
      num_shards=FLAGS.num_shards,
      splits=FLAGS.splits,
      num_workers=FLAGS.num_workers,
      skip_invalid=FLAGS.skip_invalid,
      num_classes=FLAGS.num_classes,
      ignore_label=FLAGS.ignore_label,
      image_format=FLAGS.image_format,
      label_format=FLAGS.label_format)
  print(build_data.format_summary(summaries))


if __name__ == "__main__":
  define_flags()
  app.run(main)
