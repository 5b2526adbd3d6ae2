"""Builds Cityscapes TFRecords (official format) from the raw download.

Reads the layout of `leftImg8bit_trainvaltest.zip` and
`gtFine_trainvaltest.zip` (unpacked into one `--cityscapes_root`):

  leftImg8bit/{train,val,test}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
  gtFine/{train,val,test}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

and, with `--include_coarse`, `gtCoarse/{train,train_extra}/...
_gtCoarse_labelIds.png` for the `train_coarse` split (train + train_extra,
22973 images).

Labels are converted from labelIds (0..33) to the 19 trainIds here, with the
table of `cityscapesscripts.helpers.labels` (ignored classes become 255), so
there is no need to run `createTrainIdLabelImgs` first (with
`--label_type=labelTrainIds`, its `*_labelTrainIds.png` are read as they
are instead). Images stay PNG
(lossless, `image/format` png) as in the official builder.

Splits are written as `train_fine`, `val_fine`, `test_fine` and
`train_coarse`, the names of the `cityscapes` dataset descriptor.

Usage:
  python -m deeplab.datasets.build_cityscapes_data \\
    --cityscapes_root=/data/cityscapes --output_dir=/data/cityscapes/tfrecord
"""

import functools
import os
from typing import Any, Dict, List, Optional, Sequence

from absl import flags
import numpy as np

from deeplab.datasets import build_data
from deeplab.datasets import label_io

FLAGS = flags.FLAGS

# Output split -> ((image folder, label folder, annotation kind), ...).
_SPLITS = {
    "train_fine": (("leftImg8bit/train", "gtFine/train", "gtFine"),),
    "val_fine": (("leftImg8bit/val", "gtFine/val", "gtFine"),),
    "test_fine": (("leftImg8bit/test", "gtFine/test", "gtFine"),),
    "train_coarse": (
        ("leftImg8bit/train", "gtCoarse/train", "gtCoarse"),
        ("leftImg8bit/train_extra", "gtCoarse/train_extra",
         "gtCoarse")),
}
FINE_SPLITS = ("train_fine", "val_fine", "test_fine")
_IMAGE_SUFFIX = "_leftImg8bit.png"
NUM_CLASSES = 19
IGNORE_LABEL = 255


def define_flags() -> None:
  """Defines the builder's flags (only when run as a program)."""
  flags.DEFINE_string("cityscapes_root", "./cityscapes",
                      "Folder holding leftImg8bit/ and gtFine/.")
  build_data.define_writer_flags(
      num_shards=10, num_shards_help="Shards per split (official: 10).")
  flags.DEFINE_list("splits", None,
                    "Splits to build, among train_fine, val_fine, test_fine, "
                    "train_coarse (default: the fine splits whose "
                    "leftImg8bit folder exists).")
  flags.DEFINE_boolean("include_coarse", False,
                       "Also build train_coarse from gtCoarse.")
  flags.DEFINE_enum("label_type", "labelIds", ["labelIds", "labelTrainIds"],
                    "Which label PNGs to read: labelIds (converted here) or "
                    "labelTrainIds made by createTrainIdLabelImgs (as-is).")


@functools.lru_cache(maxsize=1)
def label_id_to_train_id() -> np.ndarray:
  """uint8 [256] lookup table labelId -> trainId (255: ignored or unknown).

  Built from cityscapesscripts' label table; ids the table does not define
  map to 255 here and are rejected by `read_cityscapes_label`.
  """
  from cityscapesscripts.helpers import labels  # pylint: disable=g-import-not-at-top
  table = np.full(256, IGNORE_LABEL, dtype=np.uint8)
  for label in labels.labels:
    if 0 <= label.id < 256:
      train_id = label.trainId
      table[label.id] = train_id if 0 <= train_id < 255 else IGNORE_LABEL
  return table


@functools.lru_cache(maxsize=1)
def _known_label_ids() -> np.ndarray:
  from cityscapesscripts.helpers import labels  # pylint: disable=g-import-not-at-top
  return np.array(sorted(l.id for l in labels.labels if l.id >= 0))


def read_cityscapes_label(spec: build_data.ExampleSpec) -> np.ndarray:
  """`read_label`: a `*_labelIds.png` converted to trainIds.

  Raises:
    ValueError: naming the file, if it holds ids outside the label table.
  """
  ids = label_io.read_label_png(spec.label_source)
  unknown = np.setdiff1d(np.unique(ids), _known_label_ids())
  if unknown.size:
    raise build_data.InvalidExampleError(
        f"Label {spec.label_source} has labelIds {unknown.tolist()[:10]} that "
        "are not in cityscapesscripts' label table (expected a "
        "*_labelIds.png, not a color or instance image).")
  return label_id_to_train_id()[ids]


def list_cityscapes_examples(
    cityscapes_root: str, split: str,
    label_type: str = "labelIds") -> List[build_data.ExampleSpec]:
  """Lists a split's images (sorted by city and name) and label files
  (`*_{label_type}.png`).

  Raises:
    ValueError: for an unknown split.
    FileNotFoundError: naming the missing image folder.
  """
  if split not in _SPLITS:
    raise ValueError(f"--splits: unknown Cityscapes split {split!r}; known: "
                     f"{sorted(_SPLITS)}.")
  specs = []
  for image_dir, label_dir, kind in _SPLITS[split]:
    image_root = os.path.join(cityscapes_root, image_dir)
    build_data.require_dir(image_root, "cityscapes_root")
    for city in sorted(os.listdir(image_root)):
      city_dir = os.path.join(image_root, city)
      if not os.path.isdir(city_dir):
        continue
      for name in sorted(os.listdir(city_dir)):
        if not name.endswith(_IMAGE_SUFFIX):
          continue
        key = name[:-len(_IMAGE_SUFFIX)]
        specs.append(build_data.ExampleSpec(
            key=key,
            image_path=os.path.join(city_dir, name),
            label_source=os.path.join(cityscapes_root, label_dir, city,
                                      f"{key}_{kind}_{label_type}.png")))
  return specs


def default_splits(cityscapes_root: str, include_coarse: bool) -> List[str]:
  """The fine splits whose image folder exists, plus train_coarse if asked."""
  splits = [s for s in FINE_SPLITS
            if os.path.isdir(os.path.join(cityscapes_root, _SPLITS[s][0][0]))]
  if include_coarse:
    splits.append("train_coarse")
  if not splits:
    raise FileNotFoundError(
        f"--cityscapes_root {cityscapes_root} has no leftImg8bit/{{train,val,"
        "test}} folder; unpack leftImg8bit_trainvaltest.zip and "
        "gtFine_trainvaltest.zip into it.")
  return splits


def build_cityscapes_dataset(cityscapes_root: str,
                             output_dir: str,
                             splits: Optional[Sequence[str]] = None,
                             include_coarse: bool = False,
                             num_shards: int = 10,
                             num_workers: int = 1,
                             skip_invalid: bool = False,
                             label_type: str = "labelIds"
                             ) -> List[Dict[str, Any]]:
  """Builds the Cityscapes TFRecords, one split at a time.

  Args:
    cityscapes_root: Folder holding `leftImg8bit/` and `gtFine/`.
    output_dir: Folder for the shards.
    splits: Output splits to build; None: the fine splits present (plus
      train_coarse with `include_coarse`).
    include_coarse: Add train_coarse to the default splits.
    num_shards: Shards per split.
    num_workers: Encoding processes.
    skip_invalid: Log and skip invalid examples instead of failing.
    label_type: `labelIds` (converted to trainIds here) or `labelTrainIds`
      (stored as they are).

  Returns:
    The `build_data.write_split` summary of each split.
  """
  build_data.require_dir(cityscapes_root, "cityscapes_root")
  if label_type not in ("labelIds", "labelTrainIds"):
    raise ValueError(f"--label_type must be labelIds or labelTrainIds, got "
                     f"{label_type!r}.")
  read_label = (read_cityscapes_label if label_type == "labelIds" else
                build_data.read_png_label)
  if not splits:
    splits = default_splits(cityscapes_root, include_coarse)
  summaries = []
  for split in splits:
    specs = list_cityscapes_examples(cityscapes_root, split, label_type)
    summaries.append(build_data.write_split(
        specs, read_label, output_dir, split,
        num_shards=num_shards, num_workers=num_workers,
        num_classes=NUM_CLASSES, ignore_label=IGNORE_LABEL,
        skip_invalid=skip_invalid, keep_png=True,
        source=os.path.join(cityscapes_root, _SPLITS[split][0][0])))
  return summaries


def main(argv):
  del argv  # Unused.
  summaries = build_cityscapes_dataset(
      cityscapes_root=FLAGS.cityscapes_root, output_dir=FLAGS.output_dir,
      splits=FLAGS.splits, include_coarse=FLAGS.include_coarse,
      num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
      skip_invalid=FLAGS.skip_invalid, label_type=FLAGS.label_type)
  print(build_data.format_summary(summaries))


if __name__ == "__main__":
  define_flags()
  build_data.run_builder(main)
