"""The parsing and arithmetic of bench/tflite_op_profile.py and
bench/serving_op_profile.py (no timings): what the tables in
docs/benchmarks.md are computed from."""

import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
sys.path.insert(0, os.path.abspath(BENCH))
import serving_op_profile  # pylint: disable=g-import-not-at-top,wrong-import-position
import tflite_op_profile  # pylint: disable=g-import-not-at-top,wrong-import-position

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse avx avx2 fma f16c
processor\t: 1
model name\t: other
flags\t\t: avx512f avx512_vnni
"""


def test_cpu_flags_read_the_first_processor():
  flags = tflite_op_profile.cpu_flags(CPUINFO)
  assert flags["model"] == "AMD EPYC 7B13"
  assert flags["avx2"] and flags["fma"] and flags["f16c"]
  assert not flags["avx512f"] and not flags["avx512_vnni"]
  assert set(flags) == {"model", *tflite_op_profile.CPU_FLAGS}


def test_layer_key_macs_and_op_type():
  conv = tflite_op_profile.layer_key(
      "conv", (1, 65, 65, 32), dict(kernel_size=(3, 3), strides=(2, 2),
                                    dilation_rate=(1, 1), padding="same",
                                    filters=64))
  assert conv == ("conv", (65, 65, 32), (3, 3), (2, 2), (1, 1), "same", 64)
  # 33 x 33 outputs, each 3 * 3 * 32 MACs for each of 64 filters.
  assert tflite_op_profile.macs(conv, (1, 33, 33, 64)) == 33 * 33 * 9 * 32 * 64
  assert tflite_op_profile.op_type(conv) == "CONV_2D 3x3 stride 2"
  depthwise = tflite_op_profile.layer_key(
      "depthwise", (1, 33, 33, 960), dict(kernel_size=(3, 3), strides=(1, 1),
                                          dilation_rate=(2, 2), padding="same",
                                          depth_multiplier=1))
  # One 3x3 filter per channel: 9 MACs per output value.
  assert tflite_op_profile.macs(depthwise, (1, 33, 33, 960)) == 33 * 33 * 9 * 960
  assert tflite_op_profile.op_type(depthwise) == "DEPTHWISE_CONV_2D"


def test_summary_sums_calls_times_counts_and_leaves_the_rest():
  row = dict(op_type="CONV_2D 1x1", count=3, macs=10**9, float32_ms=10.0,
             int8_ms=8.0)
  result = {"model_float32_ms": 50.0, "model_int8_ms": 40.0,
            "layers": [row, dict(row, op_type="DEPTHWISE_CONV_2D", count=1,
                                 float32_ms=4.0, int8_ms=4.0),
                       dict(row, op_type="ARG_MAX", count=1, macs=0,
                            float32_ms=1.0, int8_ms=2.0)]}
  summary = {r["op_type"]: r for r in
             tflite_op_profile.summarize_variant(result)}
  convs = summary["all convs"]
  assert (convs["calls"], convs["float32_ms"], convs["int8_ms"]) == (4, 34, 28)
  assert convs["float32_share"] == pytest.approx(34 / 50)
  assert summary["CONV_2D 1x1"]["int8_speedup"] == pytest.approx(1.25)
  # 3 GMACs in 30 ms: 100 GMAC/s.
  assert summary["CONV_2D 1x1"]["float32_gmacs_per_s"] == pytest.approx(100)
  assert list(summary)[-4:] == ["all convs", "ARG_MAX",
                                "rest of the model (whole - timed)",
                                "whole model"]
  assert summary["ARG_MAX"]["int8_speedup"] == pytest.approx(0.5)
  rest = summary["rest of the model (whole - timed)"]
  assert (rest["float32_ms"], rest["int8_ms"]) == (15, 10)
  assert summary["whole model"]["int8_speedup"] == pytest.approx(1.25)


def test_serving_profile_counts_kernels_on_compute_threads_only():
  events = [
      ("python", "FunctionRun", 100),  # The caller's wrapper: not an op.
      ("tf_Compute/1", "ExecutorState::Process", 90),
      ("tf_Compute/1", "model/conv/Conv2D:_FusedConv2D", 40),
      ("tf_Compute/2", "_FusedConv2D", 30),
      ("tf_Compute/2", "ThreadpoolListener::Record", 5),
      ("tf_Compute/2", "ArgMax", 7),
      ("tf_numa_-1_Eigen/3", "ParallelFor", 60),
  ]
  assert serving_op_profile.op_events(events) == {
      "_FusedConv2D": [70, 2], "ArgMax": [7, 1]}


def test_side_by_side_rows_keep_the_top_op_types_and_total():
  ops = lambda **kw: {k: {"ms_per_call": v, "per_call": 1.0}  # pylint: disable=g-long-lambda
                      for k, v in kw.items()}
  result = {"ours": {"ops": ops(A=6.0, B=3.0, C=1.0)},
            "garden": {"ops": ops(A=5.0, D=5.0)}}
  rows = serving_op_profile.side_by_side(result, top=2)
  assert [r[0] for r in rows] == ["A", "D", "2 other op types", "**all ops**"]
  assert rows[0] == ["A", "6.0", "1", "60.0%", "5.0", "1", "50.0%"]
  assert rows[2][1:4] == ["4.0", "2", "40.0%"]
  assert rows[3][1] == "10.0" and rows[3][4] == "10.0"
