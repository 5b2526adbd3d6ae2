"""Input-pipeline throughput: ours against the TF Model Garden's.

Both read the same TFRecords (our builder's, whose Example keys are the
Model Garden's defaults too) and produce training batches at 513x513 with
the same augmentation: random scale in [0.5, 2.0], pad, random crop and
left-right flip. Images/s are timed over `--num_batches` batches after
`--warmup_batches`.

  ours    deeplab.datasets.input_pipeline.make_dataset (this venv): the
          crop window is drawn first and only what survives it is decoded
          and resampled (datasets/crop_window.py)
  ours_full  the same with the full-image path (decode, scale the whole
          image, pad, crop: datasets/preprocess.py), the same output
  ceiling the same reading (interleave/shuffle/repeat/batch) with decoding
          only: no scale, crop or flip; what the machine can feed at best
  garden  official.vision.dataloaders.segmentation_input Decoder + Parser
          (output_size 513x513, aug_scale 0.5-2.0, aug_rand_hflip), read
          with the same interleave/shuffle/map/batch/prefetch structure as
          the Model Garden's InputReader; runs in bench/.venv-garden
          (tf-models-official 2.20, TF 2.20), created by bench/setup_venvs.sh

`--impl=both` (default) builds the TFRecords if needed (demo dataset,
`--num_images` of `--image_size`^2, about VOC's pixel count at 448), runs
each of `--sides` in its own subprocess, alternating (A, B, C, D, A, ...),
`--repeats` times, and prints the medians and, within each round, every
side's rate relative to the Model Garden and to the decode-only ceiling
(the steadier figures on a shared machine).

Usage:
  .venv/bin/python bench/input_pipeline.py [--repeats=5]
      [--sides=ours,ours_full,ceiling,garden]
"""

import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("impl", "both",
                  ["both", "ours", "ours_full", "ceiling", "garden"],
                  "Which pipeline to time.")
flags.DEFINE_list("sides", ["ours", "ours_full", "ceiling", "garden"],
                  "Pipelines timed in alternation (impl=both).")
flags.DEFINE_string("tfrecord_dir", "/tmp/deeplab_bench_input/tfrecord",
                    "TFRecords to read (built from the demo if missing).")
flags.DEFINE_integer("num_images", 256, "Demo images to build.")
flags.DEFINE_integer("image_size", 448, "Demo image side.")
flags.DEFINE_integer("crop_size", 513, "Training crop side.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("warmup_batches", 5, "Untimed batches.")
flags.DEFINE_integer("num_batches", 40, "Timed batches.")
flags.DEFINE_integer("repeats", 3, "Runs per pipeline (impl=both).")
flags.DEFINE_string("garden_python", "bench/.venv-garden/bin/python",
                    "Python of the Model Garden venv.")

_CYCLE_LENGTH = 4
_SHUFFLE = 256


def _time(dataset) -> float:
  """Images/s over num_batches batches after the warm-up."""
  iterator = iter(dataset)
  for _ in range(FLAGS.warmup_batches):
    next(iterator)
  start = time.perf_counter()
  for _ in range(FLAGS.num_batches):
    batch = next(iterator)
  _ = batch  # The last batch is materialised by next().
  return FLAGS.num_batches * FLAGS.batch_size / (time.perf_counter() - start)


def run_ours(full_image: bool = False) -> float:
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import crop_window  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
  if full_image:
    crop_window.applies = lambda *args: False
  config = config_lib.DataConfig(
      dataset="demo", dataset_dir=FLAGS.tfrecord_dir, split="train",
      batch_size=FLAGS.batch_size,
      crop_size=(FLAGS.crop_size, FLAGS.crop_size), min_scale_factor=0.5,
      max_scale_factor=2.0, scale_factor_step_size=0.25,
      shuffle_buffer=_SHUFFLE)
  return _time(input_pipeline.make_dataset(config))


def run_ceiling() -> float:
  """Decoding alone, read like the pipelines (images all one size)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  files = tfrecord_io.list_shards(FLAGS.tfrecord_dir, "train")
  dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files))
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=min(len(files), _CYCLE_LENGTH),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  dataset = dataset.shuffle(_SHUFFLE).repeat()
  dataset = dataset.map(
      lambda r: (lambda e: (e["image"], e["label"]))(
          tfrecord_io.parse_example(r)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  dataset = dataset.batch(FLAGS.batch_size, drop_remainder=True)
  return _time(dataset.prefetch(tf.data.AUTOTUNE))


def run_garden() -> float:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.vision.dataloaders import segmentation_input  # pylint: disable=g-import-not-at-top
  files = sorted(tf.io.gfile.glob(os.path.join(FLAGS.tfrecord_dir,
                                               "train-*.tfrecord")))
  decoder = segmentation_input.Decoder()
  parser = segmentation_input.Parser(
      output_size=[FLAGS.crop_size, FLAGS.crop_size], ignore_label=255,
      aug_rand_hflip=True, aug_scale_min=0.5, aug_scale_max=2.0)
  parse = parser.parse_fn(is_training=True)
  dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files))
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=min(len(files), _CYCLE_LENGTH),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  dataset = dataset.shuffle(_SHUFFLE).repeat()
  dataset = dataset.map(lambda r: parse(decoder.decode(r)),
                        num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=False)
  dataset = dataset.batch(FLAGS.batch_size, drop_remainder=True)
  return _time(dataset.prefetch(tf.data.AUTOTUNE))


def _ensure_tfrecords() -> None:
  if os.path.isdir(FLAGS.tfrecord_dir) and any(
      n.startswith("train-") for n in os.listdir(FLAGS.tfrecord_dir)):
    return
  from deeplab.datasets import build_demo_data  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(FLAGS.tfrecord_dir.rstrip("/"))
  info = build_demo_data.generate_demo_dataset(
      os.path.join(root, "voc"), num_train=FLAGS.num_images, num_val=8,
      image_size=FLAGS.image_size, overwrite=True)
  build_demo_data.build_demo_tfrecords(info["output_dir"], FLAGS.tfrecord_dir,
                                       num_shards=4, num_workers=2)


def _subprocess_rate(python: str, impl: str) -> float:
  args = [python, os.path.abspath(__file__), f"--impl={impl}"] + [
      f"--{name}={getattr(FLAGS, name)}" for name in (
          "tfrecord_dir", "crop_size", "batch_size", "warmup_batches",
          "num_batches")]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run(args, capture_output=True, text=True, env=env,
                          check=False)
  if result.returncode:
    raise RuntimeError(f"{impl} failed:\n{result.stderr[-3000:]}")
  return float(result.stdout.strip().splitlines()[-1].split()[-2])


def main(argv):
  del argv
  runs = {"ours": run_ours, "ours_full": lambda: run_ours(full_image=True),
          "ceiling": run_ceiling, "garden": run_garden}
  if FLAGS.impl != "both":
    print(f"{FLAGS.impl} {runs[FLAGS.impl]():.1f} images/s")
    return
  _ensure_tfrecords()
  if "garden" in FLAGS.sides and not os.path.exists(FLAGS.garden_python):
    raise FileNotFoundError(f"{FLAGS.garden_python} not found; run "
                            "bash bench/setup_venvs.sh (or drop garden "
                            "from --sides)")
  rates = {side: [] for side in FLAGS.sides}
  for _ in range(FLAGS.repeats):
    for side in FLAGS.sides:  # Alternating: A, B, C, D, A, B, ...
      python = FLAGS.garden_python if side == "garden" else sys.executable
      rates[side].append(_subprocess_rate(python, side))
  print(f"{os.cpu_count()} CPUs, batch {FLAGS.batch_size}, crop "
        f"{FLAGS.crop_size}, {FLAGS.num_batches} timed batches, "
        f"{FLAGS.repeats} rounds")
  for name, values in rates.items():
    print(f"{name}: median {statistics.median(values):.1f} images/s "
          f"({', '.join(f'{v:.1f}' for v in values)})")
  for reference in ("garden", "ceiling"):
    if reference not in rates:
      continue
    for side in rates:
      if side == reference:
        continue
      ratios = [a / b for a, b in zip(rates[side], rates[reference])]
      print(f"{side} / {reference} per round: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}, median "
            f"{statistics.median(ratios):.2f}")


if __name__ == "__main__":
  app.run(main)
