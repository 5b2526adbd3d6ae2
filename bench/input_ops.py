"""Where an input example's CPU time goes: the stages of the training map.

`bench/input_pipeline.py` gives the pipeline's rate against the
decode-only ceiling. This times the stages of one example in one thread
(1 intra- and 1 inter-op thread), on the same demo TFRecords, so the gap
can be read stage by stage:

  ceiling_decode   what the ceiling does per example: parse, decode the
                   JPEG image and the PNG label in full
  ours_example     our whole per-example work: parse, decode the label,
                   then `crop_window.scale_crop_flip` (window draw, JPEG
                   window decode, resample, label gathers, padding, flip),
                   averaged over `--seeds` seeds, so over the scale grid
  label_decode     the PNG label decode inside it
  window_decode    `decode_and_crop_jpeg` of the window a 1.25 scale needs
  crop_and_resize  the bilinear resample of that window to the 513x513
                   float crop (`tf.image.crop_and_resize`)
  scale_translate  the same sampling positions through
                   `ScaleAndTranslate` (triangle kernel, no antialias)
  resize_bilinear  TF's `ResizeBilinear` from the window to 513x513:
                   not the positions we need (no sub-pixel offset), shown
                   as the cheapest bilinear kernel TF has for this size
  projective       the same positions through `ImageProjectiveTransformV3`
                   (an affine map, bilinear, on the float window)
  separable        the same positions as two 1-D passes of row gathers,
                   lerps and transposes: `crop_window.resample`, what we
                   use now (crop_and_resize before)
  label_gathers    the nearest-neighbour label rows and columns, as
                   `crop_window.gather_rows_and_columns` does it (rows of
                   the label, then rows of its transpose)
  label_gathers_axis1  the same by a gather along axis 1 (before)

Stages alternate (A, B, C, ...) for `--rounds` rounds after a warm-up
round; each sample is the mean of `--iters` calls. Writes
bench/results/<name>.json and .md.

Usage:
  .venv/bin/python bench/input_ops.py [--rounds=5] [--iters=20]
  (the TFRecords of bench/input_pipeline.py; run that first to build them)
"""

import os

from absl import app
from absl import flags

import harness

FLAGS = flags.FLAGS
flags.DEFINE_string("tfrecord_dir", "/tmp/deeplab_bench_input/tfrecord",
                    "TFRecords of bench/input_pipeline.py.")
flags.DEFINE_integer("crop_size", 513, "Training crop side.")
flags.DEFINE_float("scale", 1.25, "Scale of the single-stage rows.")
flags.DEFINE_integer("seeds", 16, "Seeds averaged by ours_example.")
flags.DEFINE_integer("rounds", 5, "Alternating rounds after the warm-up.")
flags.DEFINE_integer("iters", 20, "Calls per sample.")
flags.DEFINE_string("name", "input_ops", "Result file name.")


def _record(tf):
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  files = tfrecord_io.list_shards(FLAGS.tfrecord_dir, "train")
  return next(iter(tf.data.TFRecordDataset(files[:1])))


def _window(tf, image_shape):
  """Source positions and touched window of a centred crop at --scale."""
  height = image_shape[0]  # Square demo images: rows serve both axes.
  size = int(height * FLAGS.scale)
  step = (height - 1) / (size - 1)
  offset = (size - FLAGS.crop_size) // 2
  first, last = offset * step, (offset + FLAGS.crop_size - 1) * step
  start = int(first)
  stop = min(int(last) + 2, height)
  low, high = ((p - start) / (stop - start - 1) for p in (first, last))
  box = tf.constant([[low, low, high, high]], tf.float32)  # y1, x1, y2, x2
  rows = tf.constant([min(int(offset * step + i * step + 0.5), height - 1)
                      for i in range(FLAGS.crop_size)])
  translate = 0.5 - (first - start) / step - 0.5 / step
  positions = tf.constant([first - start + i * step
                           for i in range(FLAGS.crop_size)], tf.float32)
  return start, stop, box, rows, 1.0 / step, translate, positions


def stages(tf):
  """{name: function} of the stages, each a tf.function of no argument."""
  from deeplab.datasets import crop_window  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import tfrecord_io  # pylint: disable=g-import-not-at-top
  record = _record(tf)
  example = tfrecord_io.parse_example(record)
  shape = tuple(int(d) for d in example["image"].shape[:2])
  encoded = crop_window.parse_encoded(record)["encoded"]
  start, stop, box, rows, scale, translate, positions = _window(tf, shape)
  ends = tf.stack([positions[0], positions[-1]])  # In window coordinates.
  crop = [FLAGS.crop_size] * 2
  window = tf.image.decode_and_crop_jpeg(
      encoded, [start, start, stop - start, stop - start], channels=3)
  label = example["label"]
  seeds = tf.constant([[s, 0] for s in range(FLAGS.seeds)], tf.int64)

  def ours():  # Returns every output: tf.function prunes unused ops.
    outputs = []
    for seed in tf.unstack(seeds):
      parsed = crop_window.parse_encoded(record)
      outputs.append(crop_window.scale_crop_flip(
          parsed, FLAGS.crop_size, FLAGS.crop_size, 0.5, 2.0, 0.25, 255,
          True, seed, (127.5, 127.5, 127.5))[:2])
    return outputs

  return {
      "ceiling_decode": lambda: tfrecord_io.parse_example(record),
      "ours_example": ours,
      "label_decode": lambda: crop_window.parse_encoded(record),
      "window_decode": lambda: tf.image.decode_and_crop_jpeg(
          encoded, [start, start, stop - start, stop - start], channels=3),
      "crop_and_resize": lambda: tf.image.crop_and_resize(
          window[tf.newaxis], box, [0], crop),
      "scale_translate": lambda: tf.raw_ops.ScaleAndTranslate(
          images=window[tf.newaxis], size=crop, scale=[scale, scale],
          translation=[translate, translate], kernel_type="triangle",
          antialias=False),
      "projective": lambda: tf.raw_ops.ImageProjectiveTransformV3(
          images=tf.cast(window, tf.float32)[tf.newaxis],
          transforms=[[1.0 / scale, 0.0, positions[0], 0.0, 1.0 / scale,
                       positions[0], 0.0, 0.0]],
          output_shape=crop, fill_value=0.0, interpolation="BILINEAR"),
      "separable": lambda: crop_window.resample(
          window, tf.zeros([2], tf.int32), ends, ends, crop),
      "resize_bilinear": lambda: tf.compat.v1.image.resize_bilinear(
          window[tf.newaxis], crop, align_corners=True),
      "label_gathers": lambda: crop_window.gather_rows_and_columns(
          label[..., 0], rows, rows),
      "label_gathers_axis1": lambda: tf.cast(
          tf.gather(tf.gather(label, rows), rows, axis=1), tf.int32),
  }


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  harness.set_threads(tf, 1)
  functions = {name: tf.function(fn) for name, fn in stages(tf).items()}
  per_call = {"ours_example": FLAGS.seeds}
  samples = harness.alternate(
      {name: lambda name=name, fn=fn: harness.timed(fn, FLAGS.iters) /
       per_call.get(name, 1) * 1e3 for name, fn in functions.items()},
      FLAGS.rounds)
  summary = {name: harness.summarize(s) for name, s in samples.items()}
  ceiling = summary["ceiling_decode"]["median"]
  rows = [[name, f"{s['median']:.2f}", f"{s['best']:.2f}",
           f"{s['median'] / ceiling:.2f}"] for name, s in summary.items()]
  markdown = (f"one example, 1 thread, {FLAGS.crop_size}x{FLAGS.crop_size} "
              f"crop, single stages at scale {FLAGS.scale}; "
              f"{FLAGS.rounds} alternating rounds of {FLAGS.iters} calls "
              "after a warm-up round\n\n" + harness.markdown_table(
                  ["stage", "ms median", "ms best", "x ceiling_decode"],
                  rows))
  print(markdown)
  result = {"machine": harness.machine(), "summary": summary,
            "samples": samples}
  print("written:", harness.write_results(FLAGS.name, result, markdown))


if __name__ == "__main__":
  app.run(main)
