"""The built wheel is complete: installed non-editable, every module imports.

The editable `.venv` maps `deeplab` to the source tree, so it would hide a
sub-package that `setup.py` forgot. This test builds the wheel, installs it
without its dependencies into a throwaway venv that borrows this
environment's site-packages (TensorFlow is not installed twice), imports
every module from the installed copy and runs a console script.
"""

import os
import pathlib
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Import every module of the installed package, from the installed copy.
_IMPORT_ALL = """
import importlib, os, pkgutil, sys
import deeplab
assert "site-packages" in deeplab.__file__, deeplab.__file__
names = [m.name for m in pkgutil.walk_packages(deeplab.__path__, "deeplab.")]
for name in names:
  if name.rsplit(".", 1)[-1] in ("evaluate", "export_model", "inference",
                                 "train", "vis", "evaluation_panoptic",
                                 "import_weights", "model_stats") and (
      name.count(".") == 1 or name.startswith("deeplab.core.")
      and name.count(".") == 2):
    continue  # the apps define flags: one per process, checked below
  importlib.import_module(name)
print(len(names))
"""


def _run(args, **kwargs):
  return subprocess.run(args, capture_output=True, text=True, check=False,
                        timeout=600, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  # Build from a copy: an in-tree build/ folder could carry stale modules.
  source = tmp_path_factory.mktemp("src") / "deeplab"
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      ".git", ".venv*", "build", "dist", "runs", "*.egg-info", "__pycache__",
      "fixtures"))
  out = tmp_path_factory.mktemp("dist")
  result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                 "--no-build-isolation", "-w", str(out), str(source)])
  assert result.returncode == 0, result.stderr[-2000:]
  (path,) = out.glob("deeplab-*.whl")
  return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel):
  """A fresh venv holding the wheel; dependencies come from this env."""
  env_dir = tmp_path_factory.mktemp("venv")
  assert _run([sys.executable, "-m", "venv", "--without-pip",
               str(env_dir)]).returncode == 0
  python = env_dir / "bin" / "python"
  purelib = _run([str(python), "-c",
                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                 ).stdout.strip()
  # Dependencies: this environment's site-packages, after the venv's own.
  # (Its editable-install finder is a .pth in there and is not run.)
  deps = [p for p in site.getsitepackages() if p.endswith("site-packages")]
  pathlib.Path(purelib, "deps.pth").write_text("\n".join(deps) + "\n")
  result = _run([sys.executable, "-m", "pip", "--python", str(python),
                 "install", "--no-deps", "--no-index", str(wheel)])
  assert result.returncode == 0, result.stderr[-2000:]
  return env_dir


def test_wheel_holds_the_library_and_no_tests(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  for required in ("deeplab/train.py", "deeplab/core/config.py",
                   "deeplab/core/modeling/heads/aspp.py",
                   "deeplab/core/modeling/heads/dpc_configs/"
                   "dense_prediction_cell_branch5_top1_cityscapes.json",
                   "deeplab/core/training/runner.py",
                   "deeplab/core/export/saved_model.py",
                   "deeplab/core/evaluation/metrics.py",
                   "deeplab/datasets/build_voc2012_data.py"):
    assert required in names
  assert not [n for n in names if "/tests/" in n or "/bench/" in n]
  metadata = next(n for n in names if n.endswith("METADATA"))
  text = zipfile.ZipFile(wheel).read(metadata).decode()
  assert "License-Expression: Apache-2.0" in text or "License: Apache-2.0" in text
  assert "Requires-Python: >=3.10" in text


def test_installed_wheel_imports_every_module(venv):
  env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
  result = _run([str(venv / "bin" / "python"), "-c", _IMPORT_ALL],
                cwd=str(venv), env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert int(result.stdout.split()[-1]) > 50


@pytest.mark.parametrize("script,flag", [("deeplab-train", "--train_logdir"),
                                         ("deeplab-vis", "--vis_logdir")])
def test_installed_console_script_runs(venv, script, flag):
  env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
  result = _run([str(venv / "bin" / script), "--helpfull"], cwd=str(venv),
                env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  assert flag in result.stdout, result.stderr[-2000:]
