"""Builds ADE20K (SceneParsing, ADEChallengeData2016) TFRecords.

Reads the layout of `ADEChallengeData2016.zip`:

  images/training/ADE_train_*.jpg       annotations/training/ADE_train_*.png
  images/validation/ADE_val_*.jpg       annotations/validation/ADE_val_*.png

Annotations are greyscale PNGs of class ids 0..150 (`objectInfo150.csv`
order), 0 meaning "other", which the `ade20k` descriptor ignores. Splits are
written as `train` (20210 images) and `val` (2000); an image folder flag set
to the empty string skips its split.

Usage:
  python -m deeplab.datasets.build_ade20k_data \\
    --train_image_folder=ADEChallengeData2016/images/training \\
    --train_image_label_folder=ADEChallengeData2016/annotations/training \\
    --val_image_folder=ADEChallengeData2016/images/validation \\
    --val_image_label_folder=ADEChallengeData2016/annotations/validation \\
    --output_dir=/data/ade20k/tfrecord
"""

import os
from typing import Any, Dict, List, Optional

from absl import flags

from deeplab.datasets import build_data

FLAGS = flags.FLAGS

NUM_CLASSES = 151
IGNORE_LABEL = 0
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def define_flags() -> None:
  """Defines the official flags (only when run as a program)."""
  root = "./ADEChallengeData2016"
  flags.DEFINE_string("train_image_folder", f"{root}/images/training",
                      "Training images ('' skips the train split).")
  flags.DEFINE_string("train_image_label_folder",
                      f"{root}/annotations/training",
                      "Training annotation PNGs.")
  flags.DEFINE_string("val_image_folder", f"{root}/images/validation",
                      "Validation images ('' skips the val split).")
  flags.DEFINE_string("val_image_label_folder",
                      f"{root}/annotations/validation",
                      "Validation annotation PNGs.")
  build_data.define_writer_flags()


def list_ade20k_examples(image_folder: str, label_folder: str,
                         image_flag: str,
                         label_flag: str) -> List[build_data.ExampleSpec]:
  """One spec per image in `image_folder`, sorted; the label is the PNG of
  the same name in `label_folder`.

  Raises:
    FileNotFoundError: naming the flag, for a missing folder.
  """
  build_data.require_dir(image_folder, image_flag)
  build_data.require_dir(label_folder, label_flag)
  specs = []
  for name in sorted(os.listdir(image_folder)):
    stem, extension = os.path.splitext(name)
    if extension.lower() not in _IMAGE_EXTENSIONS:
      continue
    specs.append(build_data.ExampleSpec(
        key=stem, image_path=os.path.join(image_folder, name),
        label_source=os.path.join(label_folder, f"{stem}.png")))
  return specs


def build_ade20k_dataset(train_image_folder: Optional[str],
                         train_image_label_folder: Optional[str],
                         val_image_folder: Optional[str],
                         val_image_label_folder: Optional[str],
                         output_dir: str,
                         num_shards: int = 4,
                         num_workers: int = 1,
                         skip_invalid: bool = False) -> List[Dict[str, Any]]:
  """Builds the `train` and `val` splits (a split with no image folder is
  skipped).

  Returns:
    The `build_data.write_split` summary of each split.

  Raises:
    ValueError: if both image folders are empty.
    FileNotFoundError: naming the flag of a missing folder.
  """
  jobs = [("train", train_image_folder, train_image_label_folder),
          ("val", val_image_folder, val_image_label_folder)]
  jobs = [job for job in jobs if job[1]]
  if not jobs:
    raise ValueError("Set --train_image_folder and/or --val_image_folder.")
  # Check every folder before writing anything.
  listed = [(split, list_ade20k_examples(images, labels,
                                         f"{split}_image_folder",
                                         f"{split}_image_label_folder"),
             images) for split, images, labels in jobs]
  summaries = []
  for split, specs, images in listed:
    summaries.append(build_data.write_split(
        specs, build_data.read_png_label, output_dir, split,
        num_shards=num_shards, num_workers=num_workers,
        num_classes=NUM_CLASSES, ignore_label=IGNORE_LABEL,
        skip_invalid=skip_invalid, source=images))
  return summaries


def main(argv):
  del argv  # Unused.
  summaries = build_ade20k_dataset(
      FLAGS.train_image_folder, FLAGS.train_image_label_folder,
      FLAGS.val_image_folder, FLAGS.val_image_label_folder,
      output_dir=FLAGS.output_dir, num_shards=FLAGS.num_shards,
      num_workers=FLAGS.num_workers, skip_invalid=FLAGS.skip_invalid)
  print(build_data.format_summary(summaries))


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
