"""Builder throughput: images/s of the VOC builder with 1 and 2 workers.

Generates the bundled demo dataset (VOC layout) once, then times
`build_voc2012_data.build_voc_dataset` on its train split with each worker
count, a few repeats each, and prints the best and median rates. A build with workers includes starting
them ('spawn', about a second), as a real build does.

Usage:
  python bench/build_throughput.py [--num_images=1000] [--image_size=128]
      [--workers=1,2] [--repeats=3]
"""

import os
import statistics
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 1000, "Demo train images.")
flags.DEFINE_integer("image_size", 128, "Demo image side.")
flags.DEFINE_list("workers", ["1", "2"], "Worker counts to time.")
flags.DEFINE_integer("repeats", 3, "Builds per worker count.")


def main(argv):
  del argv
  # Imported here: 'spawn' workers re-import this script, and should not
  # pay for the demo generator's imports.
  from deeplab.datasets import build_demo_data  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import build_voc2012_data  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as root:
    info = build_demo_data.generate_demo_dataset(
        os.path.join(root, "voc"), num_train=FLAGS.num_images, num_val=8,
        image_size=FLAGS.image_size)
    voc = info["output_dir"]
    print(f"demo: {FLAGS.num_images} train images of {FLAGS.image_size}x"
          f"{FLAGS.image_size}, {os.cpu_count()} CPUs")
    for workers in (int(w) for w in FLAGS.workers):
      rates = []
      for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        build_voc2012_data.build_voc_dataset(
            os.path.join(voc, "JPEGImages"),
            os.path.join(voc, "SegmentationClass"),
            os.path.join(voc, "ImageSets", "Segmentation"),
            os.path.join(root, f"out{workers}"), num_shards=4,
            splits=["train"], num_workers=workers, num_classes=5)
        rates.append(FLAGS.num_images / (time.perf_counter() - start))
      print(f"workers={workers}: best {max(rates):.0f} images/s, median "
            f"{statistics.median(rates):.0f} images/s "
            f"({', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
  app.run(main)
