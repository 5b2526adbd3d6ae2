"""mnn_export's argument checks, before any slow conversion.

The exports themselves (float32 and calibrated uint8) are compared with
the trained Keras model in tests/core/test_export_parity.py.
"""

import importlib.util

import numpy as np
import pytest

from deeplab.core.export import mnn_export

pytestmark = pytest.mark.skipif(importlib.util.find_spec("_tools") is None,
                                reason="the mnn package is not installed")


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantization="int4"), "Unknown MNN quantization 'int4'"),
    (dict(quantization="uint8"), "needs calibration images"),
    (dict(quantization="uint8", scales=(0.5, 1.0),
          calibration_images=[]), "single-scale"),
    (dict(quantization="uint8", add_flipped_images=True,
          calibration_images=[]), "single-scale"),
])
def test_bad_arguments_fail_before_tracing_the_model(kwargs, message):
  with pytest.raises(ValueError, match=message):
    mnn_export.write_mnn(None, "/nonexistent/x.mnn", (65, 65), **kwargs)


def test_calibration_images_must_fit_the_input(tmp_path):
  images = [np.zeros((65, 65, 3), np.float32),
            np.zeros((64, 65, 3), np.float32)]
  with pytest.raises(ValueError, match=r"image 2 .*\(64, 65, 3\).*"
                     r"\(65, 65, 3\)"):
    mnn_export._write_calibration_images(  # pylint: disable=protected-access
        images, str(tmp_path / "c"), (65, 65))
  with pytest.raises(ValueError, match="empty"):
    mnn_export._write_calibration_images(  # pylint: disable=protected-access
        [], str(tmp_path / "d"), (65, 65))
