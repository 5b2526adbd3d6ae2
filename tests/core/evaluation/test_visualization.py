"""Evaluation plots are written as PNG files."""

import numpy as np
from PIL import Image

from deeplab.core.evaluation import visualization


def test_plots_are_written(tmp_path):
  confusion = np.array([[50, 2, 0], [3, 40, 1], [0, 0, 0]])
  path = visualization.plot_confusion_matrix(
      confusion, str(tmp_path / "confusion.png"), ["bg", "cat", "dog"])
  image = Image.open(path)
  assert image.format == "PNG" and min(image.size) > 100
  path = visualization.plot_per_class_iou(
      [0.9, 0.5, None], str(tmp_path / "iou.png"), ["bg", "cat", "dog"],
      miou=0.7)
  assert Image.open(path).format == "PNG"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png",
                                                        "iou.png"]


def test_many_classes_without_names(tmp_path):
  confusion = np.random.default_rng(0).integers(0, 9, (151, 151))
  path = visualization.plot_confusion_matrix(confusion,
                                             str(tmp_path / "c.png"))
  assert Image.open(path).format == "PNG"
