"""Official checkpoints give official outputs (issue 10).

Runs official research/deeplab (../shared/official_deeplab, in the
.venv-official that scripts/ensure_official_venv.sh creates and caches):
random weights with calibrated BatchNorm statistics, a zoo-style tarball,
our `python -m deeplab.core.import_weights`, and the logits, labels and
multi-scale + flipped probabilities compared (bench/official_parity.py; the
full set of configurations runs from there). Small inputs keep it short.
"""

import importlib.util
import os

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_OFFICIAL = os.path.join(_REPO, "..", "shared", "official_deeplab")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.isdir(_OFFICIAL),
        reason="../shared/official_deeplab (the official code, the oracle) "
        "is absent beside the repository"),
]


def _parity_module():
  spec = importlib.util.spec_from_file_location(
      "official_parity", os.path.join(_REPO, "bench", "official_parity.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


parity = _parity_module()
CONFIGS = [
    # The mobilenet_v2 zoo configuration (no ASPP, no decoder), with
    # multi-scale (a scale other than 1: both official resizes) and flipped
    # inference.
    parity.Config("mobilenet_v2_os16_zoo", {"model_variant": "mobilenet_v2",
                                            "output_stride": 16},
                  crop=(97, 97), eval_scales=(0.75,)),
    # Xception 65, ASPP (6, 12, 18) and decoder: the heads' epsilon 1e-5.
    parity.Config("xception_65_os16", {"model_variant": "xception_65",
                                       "output_stride": 16,
                                       "atrous_rates": (6, 12, 18),
                                       "decoder_output_stride": 4},
                  crop=(65, 65)),
    # The dense prediction cell (official meta_architecture scopes, 1e-5
    # epsilon, per-axis rates) on a cheap backbone.
    parity.Config("mobilenet_v2_dpc", {
        "model_variant": "mobilenet_v2", "output_stride": 16,
        "depth_multiplier": 0.5,
        "dense_prediction_cell_json": parity.DPC_JSON}, crop=(65, 65)),
]
PREPROCESS = [c for c in parity.PREPROCESS_CASES
              if c[0] in ("pad_zero_mean_unit_range", "pad_imagenet_mean")]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
  result = parity.run(CONFIGS, PREPROCESS,
                      str(tmp_path_factory.mktemp("official_parity")))
  return {row["name"]: row for row in result}


@pytest.mark.parametrize("name", [c.name for c in CONFIGS])
def test_import_reproduces_official_logits(rows, name):
  row = rows[name]
  assert "error" not in row, row
  assert row["matched"] == row["official_variables"] > 0
  assert not (row["missing"] or row["unused"] or row["mismatched"]), row
  for key in ("logits", "upsampled", "multi_scale"):
    if key in row:
      assert row[key]["relative"] <= parity.RELATIVE_TOLERANCE, (key, row)
      assert row[key]["agreement"] >= parity.MIN_AGREEMENT, (key, row)
  assert ("multi_scale" in row) == (name == "mobilenet_v2_os16_zoo")


@pytest.mark.parametrize("name", [c[0] for c in PREPROCESS])
def test_eval_preprocessing_pads_like_official(rows, name):
  row = rows[name]
  assert "error" not in row, row
  assert row["max_abs_pixel_diff"] == 0 and row["labels_equal"], row
