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

With `--sbd_root` (the unpacked SBD `benchmark_RELEASE/dataset` folder:
`cls/*.mat`, `img/*.jpg`, `train.txt`, `val.txt`) it also writes `train_aug`:
VOC train plus SBD train+val, minus every VOC val image (10582 images on the
full datasets). Images in VOC train keep their VOC label (which has the void
band); the others take SBD's `GTcls.Segmentation` and SBD's image.
"""

import os
from typing import Any, Dict, List, Optional, Sequence

from absl import flags
from absl import logging

from deeplab.datasets import build_data
from deeplab.datasets import label_io

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
  build_data.define_writer_flags()
  flags.DEFINE_list("splits", None,
                    "Splits to build (default: every *.txt in --list_folder).")
  flags.DEFINE_string("image_format", "jpg", "Image file extension.")
  flags.DEFINE_string("label_format", "png", "Label file extension.")
  flags.DEFINE_integer("num_classes", 21,
                       "Label values must be below this or the ignore label.")
  flags.DEFINE_integer("ignore_label", 255, "The void label value.")
  flags.DEFINE_string(
      "sbd_root", None,
      "Optional SBD dataset folder (cls/, img/, train.txt, val.txt); also "
      "writes the train_aug split.")


_require_dir = build_data.require_dir

# Official size of train_aug on the full VOC 2012 + SBD.
TRAIN_AUG_SIZE = 10582
TRAIN_AUG = "train_aug"


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


def read_voc_or_sbd_label(spec: build_data.ExampleSpec):
  """`read_label` of train_aug: SBD `.mat` files or VOC label PNGs."""
  if str(spec.label_source).endswith(".mat"):
    return label_io.read_sbd_mat(spec.label_source)
  return label_io.read_label_png(spec.label_source)


def list_train_aug_examples(
    list_folder: str, image_folder: str, label_folder: str, sbd_root: str,
    image_format: str = "jpg",
    label_format: str = "png") -> List[build_data.ExampleSpec]:
  """Lists train_aug: VOC train + SBD train + SBD val - VOC val.

  VOC train comes first, in its list order, with its VOC labels; then the
  SBD-only images, sorted, with their SBD images and `.mat` labels.

  Raises:
    FileNotFoundError: naming the missing SBD folder or list, or the missing
      VOC train/val list.
  """
  _require_dir(sbd_root, "sbd_root")
  for sub in ("cls", "img"):
    _require_dir(os.path.join(sbd_root, sub), "sbd_root")
  voc_lists = list_split_files(list_folder, ["train", "val"])
  sbd_names = []
  for sbd_split in ("train", "val"):
    path = os.path.join(sbd_root, f"{sbd_split}.txt")
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"--sbd_root: SBD list {path} not found (expected train.txt and "
          "val.txt next to cls/ and img/).")
    sbd_names += read_image_list(path)
  voc_train = list_voc_examples(voc_lists["train"], image_folder,
                                label_folder, image_format, label_format)
  excluded = set(read_image_list(voc_lists["val"]))
  excluded.update(spec.key for spec in voc_train)
  extra = sorted(set(sbd_names) - excluded)
  return voc_train + [
      build_data.ExampleSpec(
          key=name,
          image_path=os.path.join(sbd_root, "img", f"{name}.jpg"),
          label_source=os.path.join(sbd_root, "cls", f"{name}.mat"))
      for name in extra
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
                      label_format: str = "png",
                      sbd_root: Optional[str] = None) -> List[Dict[str, Any]]:
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
    sbd_root: Optional SBD `dataset` folder; also builds `train_aug`.

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
  if sbd_root:
    specs = list_train_aug_examples(list_folder, image_folder,
                                    semantic_segmentation_folder, sbd_root,
                                    image_format, label_format)
    summary = build_data.write_split(
        specs, read_voc_or_sbd_label, output_dir, TRAIN_AUG,
        num_shards=num_shards, num_workers=num_workers,
        num_classes=num_classes, ignore_label=ignore_label,
        skip_invalid=skip_invalid, source=f"VOC train/val + {sbd_root}")
    if summary["num_examples"] != TRAIN_AUG_SIZE:
      logging.warning(
          "train_aug has %d images; the official split of the full VOC 2012 "
          "+ SBD has %d.", summary["num_examples"], TRAIN_AUG_SIZE)
    summaries.append(summary)
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
      label_format=FLAGS.label_format,
      sbd_root=FLAGS.sbd_root)
  print(build_data.format_summary(summaries))


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
