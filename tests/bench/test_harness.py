"""bench/harness.py: the alternation order, the summaries and the worker
protocol every benchmark in docs/benchmarks.md relies on."""

import json
import os
import sys
import textwrap

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
sys.path.insert(0, os.path.abspath(BENCH))
import harness  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_alternate_interleaves_the_sides_after_the_warm_up():
  calls = []
  sides = {name: (lambda name=name: calls.append(name) or len(calls))
           for name in "ABC"}
  samples = harness.alternate(sides, rounds=2, warmup=1, log=None)
  assert calls == list("ABC" * 3)
  # Samples are the timed rounds only, in order: warm-up calls 1-3 dropped.
  assert samples == {"A": [4, 7], "B": [5, 8], "C": [6, 9]}


def test_speed_ratio_says_how_many_times_faster_a_is():
  # Times: A takes half B's time in every round, so A is 2x faster.
  times = harness.speed_ratio([1.0, 2.0, 1.5], [2.0, 4.0, 3.0])
  assert times == {"median": 2.0, "best": 2.0, "paired": 2.0}
  # Rates: higher is better.
  rates = harness.speed_ratio([30.0, 10.0, 20.0], [10.0, 10.0, 10.0],
                              lower_is_better=False)
  assert rates == {"median": 2.0, "best": 3.0, "paired": 2.0}
  assert harness.summarize([3.0, 1.0, 2.0])["best"] == 1.0
  assert harness.summarize([3.0, 1.0, 2.0], False)["best"] == 3.0


def test_worker_serves_requests_from_one_long_lived_process(tmp_path):
  script = tmp_path / "side.py"
  script.write_text(textwrap.dedent("""
      import os, sys
      import harness
      side = sys.argv[1].split("=", 1)[1]
      harness.serve(lambda: ({"side": side, "pid": os.getpid()},
                             lambda r: {"pid": os.getpid(), "x": r["x"] * 2}))
  """))
  worker = harness.Worker(sys.executable, str(script), "a")
  try:
    assert worker.info["side"] == "a"
    answers = [worker.request(x=x) for x in (1, 2)]
  finally:
    worker.close()
  assert [a["x"] for a in answers] == [2, 4]
  assert {a["pid"] for a in answers} == {worker.info["pid"]}


def test_a_missing_venv_is_a_one_line_error_naming_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"nope/bin/python.*setup_venvs"):
    harness.Worker(str(tmp_path / "nope" / "bin" / "python"), "x.py", "a")


def test_results_are_written_as_json_and_markdown(tmp_path):
  result = {"machine": {"command": "bench/x.py", "date": "d", "cpus": 2,
                        "load_average": (0.5, 0, 0)}, "value": 1}
  md = harness.write_results("x", result, harness.markdown_table(
      ["a", "b"], [[1, 2]]), str(tmp_path))
  assert json.loads((tmp_path / "x.json").read_text())["value"] == 1
  assert open(md).read().splitlines()[1:] == ["| a | b |", "|---|---|",
                                              "| 1 | 2 |"]
  assert not list(tmp_path.glob("*.tmp"))
