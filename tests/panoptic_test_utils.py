"""Official DeepLab panoptic-evaluation test data, read as the official tests do.

The files are official `research/deeplab/evaluation/testdata/`, read from
`../shared/official_deeplab` beside the repo; tests skip when it is absent.
`read_team_example` mirrors official `evaluation/test_utils.py`
(`read_segmentation_with_rgb_color_map`, `panoptic_segmentation_with_class_map`)
and the `_CLASS_COLOR_MAP` / `instance_class_map` of
`panoptic_quality_test.py::test_matches_expected`.
"""

import pathlib

import numpy as np
import pytest
from PIL import Image

TESTDATA = (pathlib.Path(__file__).resolve().parents[1].parent / "shared" /
            "official_deeplab" / "research" / "deeplab" / "evaluation" /
            "testdata")

# Official panoptic_quality_test.py / parsing_covering_test.py.
CLASS_COLOR_MAP = {
    (0, 0, 0): 0, (0, 0, 255): 1, (255, 0, 0): 2, (0, 255, 0): 3,
    (255, 0, 255): 4, (0, 255, 255): 5, (255, 255, 0): 6,
}
TEAM_INSTANCE_CLASS_MAP = {0: 0, 47: 1, 97: 1, 133: 1, 150: 1, 174: 1,
                           198: 2, 215: 1, 244: 1, 255: 1}


def testdata_dir() -> pathlib.Path:
  """The official testdata folder; skips the calling test when absent."""
  if not TESTDATA.is_dir():
    pytest.skip(f"official DeepLab evaluation testdata not found at {TESTDATA}")
  return TESTDATA


def _read(name: str, mode: str) -> np.ndarray:
  with Image.open(testdata_dir() / name) as image:
    return np.array(image.convert(mode))


def read_team_example():
  """(gt_classes, gt_instances, pred_classes, pred_instances) of 'team'."""
  rgb = _read("team_pred_class.png", "RGB")
  pred_classes = np.full(rgb.shape[:2], -1, np.int32)
  for color, label in CLASS_COLOR_MAP.items():
    pred_classes[np.all(rgb == color, axis=-1)] = label
  assert (pred_classes >= 0).all(), "team_pred_class.png: unknown colour"
  pred_instances = _read("team_pred_instance.png", "L")
  gt_instances = _read("team_gt_instance.png", "L")
  assert set(np.unique(gt_instances)) == set(TEAM_INSTANCE_CLASS_MAP)
  gt_classes = np.zeros_like(gt_instances)
  for instance, label in TEAM_INSTANCE_CLASS_MAP.items():
    gt_classes[gt_instances == instance] = label
  return (gt_classes.astype(np.uint16), gt_instances.astype(np.uint16),
          pred_classes.astype(np.uint16), pred_instances.astype(np.uint16))
