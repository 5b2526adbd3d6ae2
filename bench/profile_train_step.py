"""Where a training step's time goes: `train.py --profile_logdir`, by op type.

Trains `--model_variant` on demo TFRecords (built once, `--image_size`^2
images) at `--crop_size` and `--batch_size` through `python -m deeplab.train`
with the official `--profile_logdir`, profiles steps `--profile_steps` (the
first step traces the graph), then reads the TensorFlow profile (XSpace)
and sums the host-thread time of each op type (summed over the intra-op
threads, so a step's total exceeds its wall time). tf.data's work
(reading, decoding, augmenting on its own threads) is summed apart as the
input pipeline; on a 2-core machine it competes with the step for the
cores.

Usage (each extra flag goes to train.py, e.g. to compare variants):
  .venv/bin/python bench/profile_train_step.py --model_variant=mobilenet_v2 \
      [--crop_size=512 --batch_size=2] [-- --upsample_logits=false]
Prints a Markdown table and writes `--work_dir`/profile_<tag>.json.
"""

import collections
import glob
import json
import os
import subprocess
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_variant", "mobilenet_v2", "Variant to train.")
flags.DEFINE_integer("crop_size", 512, "Training crop side.")
flags.DEFINE_integer("batch_size", 2, "Training batch size.")
flags.DEFINE_integer("image_size", 512, "Demo image side.")
flags.DEFINE_list("profile_steps", ["5", "9"], "Profiled steps of the run.")
flags.DEFINE_string("work_dir", "/tmp/deeplab_bench_profile", "Work folder.")
flags.DEFINE_string("tag", "", "Name of this run (default: the variant).")
flags.DEFINE_integer("top", 20, "Op types listed.")

def _demo_tfrecords() -> str:
  """Builds (once) demo TFRecords of `--image_size` images."""
  from deeplab.datasets import build_demo_data  # pylint: disable=g-import-not-at-top
  root = os.path.join(FLAGS.work_dir, f"demo_{FLAGS.image_size}")
  tfrecords = os.path.join(root, "tfrecord")
  if not os.path.isdir(tfrecords):
    info = build_demo_data.generate_demo_dataset(
        os.path.join(root, "voc"), num_train=16, num_val=2,
        image_size=FLAGS.image_size)
    build_demo_data.build_demo_tfrecords(info["output_dir"], tfrecords,
                                         num_shards=2)
  return tfrecords


def _train_with_profile(tag: str, extra_flags) -> str:
  """Runs train.py with --profile_logdir; returns the XSpace file."""
  run_dir = os.path.join(FLAGS.work_dir, tag)
  subprocess.run(["rm", "-rf", run_dir], check=True)
  last = int(FLAGS.profile_steps[1])
  command = [sys.executable, "-m", "deeplab.train", "--dataset=demo",
             f"--model_variant={FLAGS.model_variant}",
             f"--dataset_dir={_demo_tfrecords()}",
             f"--train_logdir={run_dir}/train",
             f"--train_crop_size={FLAGS.crop_size},{FLAGS.crop_size}",
             f"--train_batch_size={FLAGS.batch_size}",
             f"--training_number_of_steps={last + 1}",
             "--log_steps=1", "--image_summary_steps=0",
             f"--profile_logdir={run_dir}/profile",
             f"--profile_steps={','.join(FLAGS.profile_steps)}",
             *extra_flags]
  print("$", " ".join(command), flush=True)
  subprocess.run(command, check=True)
  return glob.glob(f"{run_dir}/profile/plugins/profile/*/*.xplane.pb")[0]


def op_type_times(xspace_path: str):
  """Host-thread picoseconds per op type (the part after the last ':' of
  TensorFlow's `name:Type` events) over the profiled steps: (the step's,
  on `tf_Compute` threads; tf.data's, on `tf_data*` threads)."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  space = xplane_pb2.XSpace()
  with open(xspace_path, "rb") as f:
    space.ParseFromString(f.read())
  step, data = collections.Counter(), collections.Counter()
  for plane in space.planes:
    if plane.name != "/host:CPU":
      continue
    for line in plane.lines:
      # The Python thread's events enclose the ops below.
      totals = (step if line.name.startswith("tf_Compute") else
                data if line.name.startswith("tf_data") else None)
      if totals is None:
        continue
      for event in line.events:
        meta = plane.event_metadata[event.metadata_id]
        name = meta.display_name or meta.name
        if name.startswith("Executor") or name in ("RunWithBorrowedArgs",
                                                    "ParallelFor"):
          continue  # Scheduling wrappers around the ops.
        totals[name.rsplit(":", 1)[-1]] += event.duration_ps
  return step, data


def table(compute: collections.Counter, data: collections.Counter,
          steps: int, top: int) -> str:
  """Markdown: ms per step and share of each op type, input apart."""
  input_ps = sum(data.values())
  all_compute = sum(compute.values())
  rows = ["| op type | ms/step | share of step ops |", "|---|---|---|"]
  for name, ps in compute.most_common(top):
    rows.append(f"| {name} | {ps / 1e9 / steps:.1f} | "
                f"{100 * ps / all_compute:.1f}% |")
  rows.append(f"| *all step ops* | {all_compute / 1e9 / steps:.1f} | 100% |")
  rows.append(f"| *input pipeline threads* | {input_ps / 1e9 / steps:.1f} | "
              "(apart) |")
  return "\n".join(rows)


def main(argv):
  extra_flags = argv[1:]
  tag = FLAGS.tag or FLAGS.model_variant
  os.makedirs(FLAGS.work_dir, exist_ok=True)
  step, data = op_type_times(_train_with_profile(tag, extra_flags))
  first, last = (int(s) for s in FLAGS.profile_steps)
  steps = last - first + 1
  print(f"\n{tag}: {FLAGS.model_variant} {FLAGS.crop_size}x{FLAGS.crop_size}"
        f" batch {FLAGS.batch_size}, steps {first}-{last}, train.py flags "
        f"{extra_flags}\n")
  print(table(step, data, steps, FLAGS.top))
  with open(os.path.join(FLAGS.work_dir, f"profile_{tag}.json"), "w",
            encoding="utf-8") as f:
    json.dump({"tag": tag, "variant": FLAGS.model_variant,
               "crop_size": FLAGS.crop_size, "batch_size": FLAGS.batch_size,
               "steps": steps, "extra_flags": extra_flags,
               "step_ps_by_op_type": dict(step),
               "input_ps_by_op_type": dict(data)}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
