"""Metric speed on Cityscapes-size PNGs: ours against cityscapesscripts.

Same work on every side: N generated pairs of 1024x2048 labelId PNGs
(ground truth `*_gtFine_labelIds.png`, prediction `*_leftImg8bit.png`),
decoded from disk and reduced to the 19 trainId IoUs. Sides, each in its
own subprocess so that none inherits another's warm state:

* `ours_app`: `python -m deeplab.evaluate --dataset=cityscapes
  --predictions_dir --ground_truth_dir --noeval_plots` end to end (wall
  time: Python start-up (no TensorFlow on this path), file matching,
  scoring, metrics.json): the same work as cityscapesscripts' program.
* `ours_app_plots`: the same with the default `--eval_plots`, which also
  draws the confusion matrix and per-class IoU PNGs (matplotlib), work
  that cityscapesscripts does not do.
* `cityscapesscripts_app`: the `cityscapesscripts` side below, but timed
  as a program, by its wall time: Python start-up included, as for
  `ours_app`.
* `ours_lib`: `score_folder.score_predictions` alone, timed inside.
* `cityscapesscripts`: `evaluateImgLists` (evalInstLevelScore=False; the
  wheel has no compiled extension here, so it counts with `np.unique`),
  timed inside.
* `floor`: the least any scorer must do in one thread: PIL-decode both
  PNGs of every pair and one `np.bincount`, no checks, timed inside.

After one warm-up round (page cache, .pyc), `--repeats` rounds run every
side in turn (A, B, C, D, A, B, ...); the table gives each side's median
and best and its speed ratios (`harness.speed_ratio`). Every side's
configuration is printed. The per-class IoUs of `ours_lib` and cityscapesscripts are compared.

Usage:
  python bench/metrics.py [--num_pairs=50] [--repeats=5] [--threads=0]
      [--output_dir=bench/results] [--name=metrics]
Smoke run: python bench/metrics.py --num_pairs=2 --repeats=1
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

import harness

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_pairs", 50, "Generated prediction/truth pairs.")
flags.DEFINE_integer("height", 1024, "PNG height.")
flags.DEFINE_integer("width", 2048, "PNG width.")
flags.DEFINE_integer("repeats", 5, "Timed rounds after the warm-up round.")
flags.DEFINE_integer("threads", 0, "ours: decode threads (0: one per CPU).")
flags.DEFINE_list("sides", ["ours_app", "ours_app_plots",
                            "cityscapesscripts_app", "ours_lib",
                            "cityscapesscripts", "floor"], "Sides to time.")
flags.DEFINE_string("work_dir", None, "Where the PNGs go (default: a "
                    "temporary folder, removed after).")
flags.DEFINE_string("output_dir", harness.RESULTS_DIR,
                    "Where <name>.json and <name>.md are written.")
flags.DEFINE_string("name", "metrics", "Result file name.")
flags.DEFINE_string("worker", None, "Internal: time one side, print JSON.")

REFERENCES = ("cityscapesscripts_app", "cityscapesscripts", "floor")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = {
    "ours_app": "python -m deeplab.evaluate --dataset=cityscapes "
                "--predictions_dir --ground_truth_dir --eval_threads={t} "
                "--noeval_plots; subprocess wall time, start-up included",
    "ours_app_plots": "ours_app with its default --eval_plots (two "
                      "matplotlib PNGs drawn as well)",
    "cityscapesscripts_app": "evaluateImgLists as above, in a Python "
                             "program; subprocess wall time, start-up "
                             "included",
    "ours_lib": "score_folder.score_predictions, {t} threads; timed inside",
    "cityscapesscripts": "evaluateImgLists, evalInstLevelScore=False, "
                         "CSUPPORT={cs}; timed inside",
    "floor": "PIL decode of both PNGs + np.bincount, 1 thread; timed inside",
}


def generate(folder, count, height, width, seed=0):
  """Blocky labelId ground truth (all 34 ids) and a fifth-wrong prediction."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  for index in range(count):
    city = ("aachen", "bochum", "ulm")[index % 3]
    stem = f"{city}_{index:06d}_000019"
    blocks = rng.integers(0, 34, (height // 32, width // 32))
    truth = np.kron(blocks, np.ones((32, 32), np.uint8)).astype(np.uint8)
    wrong = np.kron(rng.random(blocks.shape) < 0.2, np.ones((32, 32), bool))
    prediction = np.where(wrong, rng.integers(0, 34, truth.shape),
                          truth).astype(np.uint8)
    for sub, name, array in (("gt", f"{stem}_gtFine_labelIds.png", truth),
                             ("pred", f"{stem}_leftImg8bit.png", prediction)):
      os.makedirs(os.path.join(folder, sub, city), exist_ok=True)
      Image.fromarray(array).save(os.path.join(folder, sub, city, name))


def _lists(folder):
  truths, predictions = [], []
  for root, _, names in sorted(os.walk(os.path.join(folder, "gt"))):
    for name in sorted(names):
      truths.append(os.path.join(root, name))
      predictions.append(os.path.join(
          root.replace(os.path.join(folder, "gt"),
                       os.path.join(folder, "pred")),
          name.replace("_gtFine_labelIds", "_leftImg8bit")))
  return truths, predictions


def run_worker(side, folder, threads):
  """Times one side in this process; returns a dict."""
  truths, predictions = _lists(folder)
  if side == "ours_lib":
    from deeplab.core.evaluation import score_folder  # pylint: disable=g-import-not-at-top
    from deeplab.datasets import data_descriptors  # pylint: disable=g-import-not-at-top
    descriptor = data_descriptors.get_dataset_descriptor("cityscapes")
    start = time.perf_counter()
    result = score_folder.score_predictions(
        os.path.join(folder, "pred"), descriptor,
        ground_truth_dir=os.path.join(folder, "gt"), num_threads=threads)
    return {"seconds": time.perf_counter() - start,
            "per_class_iou": result["per_class_iou"]}
  if side == "cityscapesscripts":
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval  # pylint: disable=g-import-not-at-top
    from cityscapesscripts.helpers import labels as cs_labels  # pylint: disable=g-import-not-at-top
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    start = time.perf_counter()
    result = cs_eval.evaluateImgLists(predictions, truths, args)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "csupport": cs_eval.CSUPPORT,
            "per_class_iou": [result["classScores"][
                cs_labels.trainId2label[t].name] for t in range(19)]}
  from PIL import Image  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  counts = np.zeros(65536, np.int64)
  for truth, prediction in zip(truths, predictions):
    code = np.asarray(Image.open(truth), np.uint16) << 8
    code |= np.asarray(Image.open(prediction), np.uint8)
    counts += np.bincount(code.ravel(), minlength=65536)
  return {"seconds": time.perf_counter() - start}


def _run_side(side, folder, threads, eval_logdir):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  if side.startswith("ours_app"):
    cmd = [sys.executable, "-m", "deeplab.evaluate", "--dataset=cityscapes",
           f"--predictions_dir={os.path.join(folder, 'pred')}",
           f"--ground_truth_dir={os.path.join(folder, 'gt')}",
           f"--eval_threads={threads}", f"--eval_logdir={eval_logdir}",
           f"--{'' if side == 'ours_app_plots' else 'no'}eval_plots"]
  else:
    cmd = [sys.executable, os.path.abspath(__file__),
           f"--worker={side.removesuffix('_app')}",
           f"--work_dir={folder}", f"--threads={threads}"]
  start = time.perf_counter()
  result = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=_REPO, check=False)
  wall = time.perf_counter() - start
  if result.returncode:
    raise RuntimeError(f"{side} failed:\n{result.stderr[-3000:]}")
  record = {"wall_s": wall}
  lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
  if "_app" in side:
    record["seconds"] = wall
  else:
    record.update(json.loads(lines[-1]))
  return record


def _table(result, sides):
  """Each side's median and best, and its speed against the references."""
  rows = []
  for side in sides:
    s = result["sides"][side]
    row = [side, s["config"], f"{s['median']:.2f}", f"{s['best']:.2f}"]
    for reference in REFERENCES:
      r = result["ratios"].get(f"{side}/{reference}")
      row.append(f"{r['median']:.2f} (paired {r['paired']:.2f})" if r else "")
    rows.append(row)
  return harness.markdown_table(
      ["side", "configuration", "median s", "best s"] +
      [f"speed vs {reference}" for reference in REFERENCES], rows)


def bench(folder):
  """Generates the PNGs, then alternates the sides after a warm-up round."""
  threads = FLAGS.threads or os.cpu_count()
  generate(folder, FLAGS.num_pairs, FLAGS.height, FLAGS.width)
  eval_logdir = os.path.join(folder, "eval")
  warm = {side: _run_side(side, folder, threads, eval_logdir)
          for side in FLAGS.sides}
  samples = harness.alternate(
      {side: lambda side=side: _run_side(side, folder, threads,
                                         eval_logdir)["seconds"]
       for side in FLAGS.sides}, FLAGS.repeats, warmup=0)
  csupport = warm.get("cityscapesscripts", {}).get("csupport")
  summary = {side: dict(harness.summarize(t),
                        config=CONFIG[side].format(t=threads, cs=csupport))
             for side, t in samples.items()}
  ratios = {f"{side}/{reference}": harness.speed_ratio(
      samples[side], samples[reference])
            for reference in REFERENCES
            for side in samples if reference in samples and side != reference}
  result = {"machine": harness.machine(), "num_pairs": FLAGS.num_pairs,
            "size": [FLAGS.height, FLAGS.width], "repeats": FLAGS.repeats,
            "sides": summary, "samples": samples, "ratios": ratios}
  if "ours_lib" in warm and "cityscapesscripts" in warm:
    differences = [abs(a - b) for a, b in zip(
        warm["ours_lib"]["per_class_iou"],
        warm["cityscapesscripts"]["per_class_iou"]) if a is not None]
    result["max_per_class_iou_difference"] = max(differences)
  return result


def main(argv):
  del argv
  if FLAGS.worker:
    print(json.dumps(run_worker(FLAGS.worker, FLAGS.work_dir,
                                FLAGS.threads)))
    return
  if FLAGS.work_dir:
    result = bench(FLAGS.work_dir)
  else:
    with tempfile.TemporaryDirectory() as folder:
      result = bench(folder)
  header = (f"{result['num_pairs']} pairs of {FLAGS.height}x{FLAGS.width} "
            f"labelId PNGs, decode included, {FLAGS.repeats} alternating "
            "rounds after a warm-up round; speed = time ratio (> 1: faster); "
            "max per-class IoU difference ours vs cityscapesscripts "
            f"{result.get('max_per_class_iou_difference')}")
  markdown = header + "\n\n" + _table(result, FLAGS.sides)
  print(markdown)
  print("written:", harness.write_results(FLAGS.name, result, markdown,
                                          FLAGS.output_dir))


if __name__ == "__main__":
  app.run(main)
