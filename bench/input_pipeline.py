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

The driver builds the TFRecords if needed (demo dataset, `--num_images` of
`--image_size`^2, about VOC's pixel count at 448) and starts each of
`--sides` as a long-lived worker (`harness.Worker`) that builds its
pipeline. It then alternates the sides (A, B, C, D, A, ...); each sample
starts a fresh iterator, pulls `--warmup_batches` untimed and times
`--num_batches` (no iterator lives between samples, so no side prefetches
while another is timed), `--rounds` times after a warm-up round, and reports
each side's median and best images/s, and the speed ratios against the
Model Garden and the decode-only ceiling (`harness.speed_ratio`).

Usage:
  .venv/bin/python bench/input_pipeline.py [--rounds=5] [--num_batches=20]
      [--sides=ours,ours_full,ceiling,garden] [--name=input_pipeline]
Writes bench/results/<name>.json and .md.
"""

import os
import time

from absl import app
from absl import flags

import harness

FLAGS = flags.FLAGS
flags.DEFINE_list("sides", ["ours", "ours_full", "ceiling", "garden"],
                  "Pipelines timed in alternation.")
flags.DEFINE_string("tfrecord_dir", "/tmp/deeplab_bench_input/tfrecord",
                    "TFRecords to read (built from the demo if missing).")
flags.DEFINE_integer("num_images", 256, "Demo images to build.")
flags.DEFINE_integer("image_size", 448, "Demo image side.")
flags.DEFINE_integer("crop_size", 513, "Training crop side.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("warmup_batches", 5, "Untimed batches.")
flags.DEFINE_integer("num_batches", 20, "Batches per sample.")
flags.DEFINE_integer("rounds", 5, "Alternating rounds after the warm-up.")
flags.DEFINE_integer("threads", 2, "Intra- and inter-op threads, every side.")
flags.DEFINE_string("name", "input_pipeline", "Result file name in "
                    "bench/results.")
flags.DEFINE_string("serve", None, "Internal: serve this side.")

_CYCLE_LENGTH = 4
_SHUFFLE = 256


def _sampler(dataset):
  """A function that times `batches` batches of `dataset` in images/s.

  Each sample makes a new iterator, pulls the warm-up batches untimed, times
  `batches` more, then drops the iterator: a live iterator would keep
  filling its prefetch and parallel-map buffers while the other sides run
  (stealing their CPU, then serving its next sample from the buffers).
  """

  def sample(batches):
    iterator = iter(dataset)
    for _ in range(FLAGS.warmup_batches):
      next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
      next(iterator)  # Each batch is materialised by next().
    rate = batches * FLAGS.batch_size / (time.perf_counter() - start)
    del iterator
    return rate
  return sample


def run_ours(full_image: bool = False):
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
  return input_pipeline.make_dataset(config)


def run_ceiling():
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
  return dataset.prefetch(tf.data.AUTOTUNE)


def run_garden():
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
  return dataset.prefetch(tf.data.AUTOTUNE)


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


PIPELINES = {"ours": run_ours, "ours_full": lambda: run_ours(full_image=True),
             "ceiling": run_ceiling, "garden": run_garden}


def worker_setup(side):
  """Builds and warms one pipeline; returns (info, handler)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, FLAGS.threads)
  sample = _sampler(PIPELINES[side]())
  info = {"side": side, "tensorflow": tf.__version__}
  return info, lambda request: {"rate": sample(request["batches"])}


def report(samples):
  """The result dict and its Markdown tables."""
  rows = []
  for side, values in samples.items():
    s = harness.summarize(values, lower_is_better=False)
    rows.append([side, f"{s['median']:.1f}", f"{s['best']:.1f}"])
  table = harness.markdown_table(["pipeline", "images/s median",
                                  "images/s best"], rows)
  ratios, ratio_rows = {}, []
  for reference in ("garden", "ceiling", "ours_full"):
    for side in samples:
      if reference in samples and side not in (reference, "ceiling"):
        r = harness.speed_ratio(samples[side], samples[reference],
                                lower_is_better=False)
        ratios[f"{side}/{reference}"] = r
        ratio_rows.append([f"{side} / {reference}", f"{r['median']:.2f}",
                           f"{r['best']:.2f}", f"{r['paired']:.2f}"])
  ratio_table = harness.markdown_table(
      ["rate ratio", "of medians", "of bests", "median per round"],
      ratio_rows)
  markdown = (f"batch {FLAGS.batch_size}, crop {FLAGS.crop_size}x"
              f"{FLAGS.crop_size}, scale 0.5-2.0, flip; {FLAGS.num_batches} "
              f"batches per sample, {FLAGS.rounds} alternating rounds after "
              f"a warm-up round; {FLAGS.threads} intra/inter-op threads per "
              f"side.\n\n{table}\n\n{ratio_table}")
  result = {"machine": harness.machine(), "batch_size": FLAGS.batch_size,
            "crop_size": FLAGS.crop_size, "num_batches": FLAGS.num_batches,
            "rounds": FLAGS.rounds, "samples": samples, "ratios": ratios}
  return result, markdown


def main(argv):
  del argv
  if FLAGS.serve:
    harness.serve(lambda: worker_setup(FLAGS.serve))
    return
  _ensure_tfrecords()
  args = [f"--{name}={getattr(FLAGS, name)}" for name in (
      "tfrecord_dir", "crop_size", "batch_size", "warmup_batches", "threads")]
  workers = {}
  try:
    for side in FLAGS.sides:
      python = harness.VENV_PYTHONS["garden" if side == "garden" else "ours"]
      workers[side] = harness.Worker(python, os.path.abspath(__file__), side,
                                     args)
      print(f"{side}: {workers[side].info}", flush=True)
    samples = harness.alternate(
        {side: lambda w=worker: w.request(batches=FLAGS.num_batches)["rate"]
         for side, worker in workers.items()}, FLAGS.rounds, warmup=1)
  finally:
    for worker in workers.values():
      worker.close()
  result, markdown = report(samples)
  print(markdown)
  print("written:", harness.write_results(FLAGS.name, result, markdown))


if __name__ == "__main__":
  app.run(main)
