"""The one benchmark harness: long-lived workers, alternating rounds, honest
summaries.

Every comparison in docs/benchmarks.md follows the same recipe:

1. Each side runs in its own long-lived process (`Worker`), in its own
   virtual environment where it needs one (the Model Garden, keras-hub).
   The process builds its model or pipeline once, warms it up, prints one
   JSON line describing its configuration, then serves timing requests,
   one JSON line in, one JSON line out (`serve`). While one side runs, the
   others wait on their pipe, so the sides never compete for the CPU. A
   side with background work (a live tf.data iterator keeps prefetching)
   must stop it between samples, or it steals the CPU of the side being
   timed and serves its next sample from its buffers.
2. The driver alternates the sides within one run, A, B, C, A, B, C, ...
   (`alternate`), so a shared machine that slows down slows every side.
3. Each side is reported by its median and its best sample, and each pair
   by the ratio of medians, the ratio of bests and the median of the
   per-round ratios (`summarize`, `speed_ratio`).
4. The result goes to a JSON file and a Markdown table (`write_results`),
   which docs/benchmarks.md includes verbatim.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
VENV_PYTHONS = {
    "ours": sys.executable,
    "garden": os.path.join(BENCH_DIR, ".venv-garden", "bin", "python"),
    "kerashub": os.path.join(BENCH_DIR, ".venv-kerashub", "bin", "python"),
}


def set_threads(tf, threads: int) -> None:
  """The same intra- and inter-op thread counts for every side."""
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)


def check_python(python: str) -> str:
  """`python`, or a one-line error that says how to create it."""
  if not os.path.exists(python):
    raise FileNotFoundError(f"{python} not found: run bash "
                            "bench/setup_venvs.sh")
  return python


class Worker:
  """One side of a comparison, served by a long-lived process.

  The process is `python script --serve=side *args`; `script` calls
  `serve` in that mode. `info` is the JSON line it prints once set up.
  """

  def __init__(self, python: str, script: str, side: str,
               args: Sequence[str] = ()):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(
                   p for p in (BENCH_DIR, os.environ.get("PYTHONPATH")) if p))
    self.side = side
    self._process = subprocess.Popen(
        [check_python(python), script, f"--serve={side}", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        cwd=REPO_DIR)
    self.info = self._read()

  def _read(self) -> dict:
    for line in self._process.stdout:
      if line.startswith("{"):
        return json.loads(line)
    raise RuntimeError(f"The {self.side} worker exited with status "
                       f"{self._process.wait()} (its stderr is above).")

  def request(self, **payload) -> dict:
    """Sends one request; returns the worker's JSON answer."""
    self._process.stdin.write(json.dumps(payload) + "\n")
    self._process.stdin.flush()
    return self._read()

  def close(self) -> None:
    if self._process.poll() is None:
      self._process.stdin.close()
      self._process.wait(timeout=120)


def serve(setup: Callable[[], tuple]) -> None:
  """Worker side: `setup()` returns (info, handler); prints `info`, then
  answers each JSON request line on stdin with `handler(request)`."""
  info, handler = setup()
  print(json.dumps(info), flush=True)
  for line in sys.stdin:
    print(json.dumps(handler(json.loads(line))), flush=True)


def timed(fn: Callable[[], object], iters: int) -> float:
  """Seconds per call of `fn` over `iters` calls (the last one's result is
  forced by `fn` itself)."""
  start = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - start) / iters


def alternate(sides: Dict[str, Callable[[], float]], rounds: int,
              warmup: int = 1, log: Optional[Callable[[str], None]] = print
              ) -> Dict[str, List[float]]:
  """Samples every side once per round, in turn: A, B, C, A, B, C, ...

  `warmup` untimed rounds come first. Each callable returns one sample
  (seconds, or a rate: the caller says which when summarising).
  """
  for _ in range(warmup):
    for sample in sides.values():
      sample()
  samples = {name: [] for name in sides}
  for index in range(rounds):
    for name, sample in sides.items():
      samples[name].append(sample())
    if log:
      log(f"round {index + 1}/{rounds}: " + ", ".join(
          f"{name} {values[-1]:.4g}" for name, values in samples.items()))
  return samples


def summarize(samples: List[float], lower_is_better: bool = True) -> dict:
  """Median, best (min of times, max of rates) and every sample."""
  best = min(samples) if lower_is_better else max(samples)
  return {"median": statistics.median(samples), "best": best,
          "samples": list(samples)}


def speed_ratio(a: List[float], b: List[float],
                lower_is_better: bool = True) -> dict:
  """How many times faster A is than B (> 1: A is faster).

  `median`: ratio of the medians; `best`: ratio of the best samples;
  `paired`: median of the ratios taken within each round, the steadiest
  on a shared machine.
  """
  def ratio(x, y):
    return y / x if lower_is_better else x / y
  sa, sb = summarize(a, lower_is_better), summarize(b, lower_is_better)
  return {"median": ratio(sa["median"], sb["median"]),
          "best": ratio(sa["best"], sb["best"]),
          "paired": statistics.median(ratio(x, y) for x, y in zip(a, b))}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |"
            for row in rows]
  return "\n".join(lines)


def machine() -> dict:
  """What the reader needs to weigh the figures."""
  return {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
          "command": " ".join([os.path.relpath(sys.argv[0], REPO_DIR),
                               *sys.argv[1:]]),
          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write_results(name: str, result: dict, markdown: str,
                  output_dir: str = RESULTS_DIR) -> str:
  """Writes `name`.json and `name`.md (atomically); returns the .md path."""
  os.makedirs(output_dir, exist_ok=True)
  header = (f"<!-- generated by `{result['machine']['command']}` on "
            f"{result['machine']['date']}; {result['machine']['cpus']} CPUs, "
            f"load average {result['machine']['load_average'][0]:.1f} -->\n")
  paths = {}
  for extension, text in (("json", json.dumps(result, indent=2) + "\n"),
                          ("md", header + markdown + "\n")):
    path = os.path.join(output_dir, f"{name}.{extension}")
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
    paths[extension] = path
  return paths["md"]
