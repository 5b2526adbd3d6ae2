"""scripts/train_*.sh: plan, data check, and flags every app accepts.

The scripts run with DRY_RUN=1 (print the commands, run nothing) against a
folder of placeholder shards; each printed command's flags are then parsed
by its app's own absl flag definitions, so a renamed or misspelt flag fails
here rather than hours into a job.
"""

import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

from deeplab.core.modeling import model_variants

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = {
    "train_pascal_voc2012.sh": ("train_aug", "val"),
    "train_cityscapes.sh": ("train_fine", "val_fine"),
    "train_ade20k.sh": ("train", "val"),
    "train_people_seg.sh": ("train", "val"),
}
_PARSE = """
import json, sys
from absl import flags
import importlib
importlib.import_module("deeplab." + sys.argv[1])
for argv in json.loads(sys.stdin.read()):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["app"] + argv)
print("ok")
"""


def _dry_run(script, dataset_dir, **env):
  return subprocess.run(
      ["bash", str(REPO / "scripts" / script)], capture_output=True,
      text=True, timeout=60, check=False,
      env=dict(os.environ, DRY_RUN="1", DATASET_DIR=str(dataset_dir),
               PYTHON="python", **env))


def test_scripts_check_their_data(tmp_path):
  for script, (train_split, _) in SCRIPTS.items():
    result = _dry_run(script, tmp_path / "missing")
    assert result.returncode == 2, script
    assert f"no {train_split}-*-of-*.tfrecord shards" in result.stderr
    assert "Build them first" in result.stderr
    assert "+ python" not in result.stdout


def test_scripts_run_train_evaluate_export_with_valid_flags(tmp_path):
  commands = {"train": [], "evaluate": [], "export_model": []}
  for script, splits in SCRIPTS.items():
    data = tmp_path / script
    data.mkdir()
    for split in splits:
      (data / f"{split}-00000-of-00001.tfrecord").touch()
    result = _dry_run(script, data, NUM_GPUS="2",
                      INIT_CHECKPOINT="/ckpt/model")
    assert result.returncode == 0, result.stderr
    lines = [l[2:] for l in result.stdout.splitlines() if l.startswith("+ ")]
    apps = [shlex.split(l)[2].split(".")[-1] for l in lines]
    assert apps == ["train", "evaluate", "export_model"], script
    assert "--distribution_strategy=mirrored" in lines[0]
    assert "--tf_initial_checkpoint=/ckpt/model" in lines[0]
    variant = next(a for a in shlex.split(lines[0])
                   if a.startswith("--model_variant=")).split("=")[1]
    model_variants.get_model_variant(variant)  # Raises if unknown.
    for app, line in zip(apps, lines):
      commands[app].append(shlex.split(line)[3:])
  for app, argvs in commands.items():
    result = subprocess.run(
        [sys.executable, "-c", _PARSE, app], input=json.dumps(argvs),
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0 and "ok" in result.stdout, (
        app, result.stderr[-2000:])


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_print_their_plan(script, tmp_path):
  result = _dry_run(script, tmp_path)
  first_line = result.stdout.splitlines()[0]
  assert "train" in first_line and "evaluate" in first_line
