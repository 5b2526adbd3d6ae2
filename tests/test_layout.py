"""The package layout's dependency rule, enforced by walking the imports.

The rule (README, "Layout"): `datasets` and `core/modeling` use only the
base (`core/config.py`, `core/io_utils.py`, `core/checkpoints.py`);
`core/export`, `core/evaluation` and `core/training` build on those
(evaluation may use export's predictors, training may use evaluation's
metrics); nothing in the library imports an app (the top-level commands and
the thin command lines `core/import_weights.py`, `core/model_stats.py`).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Modules that read flags: the command lines. Only they may import each other.
APPS = frozenset({
    "deeplab.train", "deeplab.evaluate", "deeplab.export_model",
    "deeplab.inference", "deeplab.common_flags", "deeplab.serving_client",
    "deeplab.vis", "deeplab.evaluation_panoptic",
    "deeplab.core.import_weights", "deeplab.core.model_stats",
})
BASE = frozenset({"deeplab.core", "deeplab.core.config",
                  "deeplab.core.io_utils", "deeplab.core.checkpoints"})
# Which layers each layer may import.
ALLOWED = {
    "base": {"base"},
    "datasets": {"base", "datasets"},
    "modeling": {"base", "modeling"},
    "export": {"base", "datasets", "modeling", "export"},
    "evaluation": {"base", "datasets", "modeling", "export", "evaluation"},
    "training": {"base", "datasets", "modeling", "evaluation", "training"},
}


def layer_of(module: str) -> str:
  """The layer of a `deeplab.*` module: app, base, datasets, modeling, ..."""
  if module in APPS or module == "deeplab":
    return "app"
  if module in BASE:
    return "base"
  parts = module.split(".")
  if parts[1] == "datasets":
    return "datasets"
  if parts[1] == "core" and len(parts) > 2 and parts[2] in ALLOWED:
    return parts[2]
  return "app"  # any other top-level module is a command line


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(("deeplab",) + parts)


def library_modules():
  for folder in ("core", "datasets"):
    for path in sorted((ROOT / folder).rglob("*.py")):
      name = module_name(path)
      if layer_of(name) != "app":
        yield name, path


def deeplab_imports(path: pathlib.Path):
  """Every `deeplab.*` module that `path` imports, at any depth."""
  tree = ast.parse(path.read_text(), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from deeplab.core import x` imports the module deeplab.core.x.
      names = [f"{node.module}.{alias.name}" for alias in node.names]
      names = [n if (ROOT / _relpath(n)).exists() or
               (ROOT / _relpath(n) / "__init__.py").exists() else node.module
               for n in names]
    else:
      continue
    for name in names:
      if name == "deeplab" or name.startswith("deeplab."):
        yield name


def _relpath(module: str) -> pathlib.Path:
  parts = module.split(".")[1:]
  path = ROOT.joinpath(*parts) if parts else ROOT
  return path.with_suffix(".py") if parts else path


def violations(modules):
  found = []
  for name, path in modules:
    layer = layer_of(name)
    for imported in deeplab_imports(path):
      target = layer_of(imported)
      if target not in ALLOWED[layer]:
        found.append(f"{name} ({layer}) imports {imported} ({target})")
  return found


def test_library_follows_the_dependency_rule():
  assert not violations(library_modules())


def test_every_core_file_sits_in_a_role_folder():
  top = sorted(p.name for p in (ROOT / "core").glob("*.py"))
  assert len(top) <= 6, top
  assert set(top) <= {"__init__.py", "config.py", "io_utils.py",
                      "checkpoints.py", "import_weights.py", "model_stats.py"}
  roles = sorted(p.name for p in (ROOT / "core").iterdir()
                 if p.is_dir() and p.name != "__pycache__")
  assert roles == ["evaluation", "export", "modeling", "training"]


def test_the_rule_catches_modeling_importing_training(tmp_path):
  """A modeling module that imports training is reported."""
  bad = tmp_path / "bad.py"
  bad.write_text("from deeplab.core.training import losses\n")
  found = violations([("deeplab.core.modeling.bad", bad)])
  assert found == ["deeplab.core.modeling.bad (modeling) imports "
                   "deeplab.core.training.losses (training)"]


@pytest.mark.parametrize("name", ["deeplab.core.modeling.heads.aspp",
                                  "deeplab.datasets.preprocess"])
def test_the_walk_sees_function_level_imports(name, tmp_path):
  source = tmp_path / "m.py"
  source.write_text("def f():\n  from deeplab import train\n")
  assert violations([(name, source)])


# The backbone builders follow the official scopes layer by layer (one
# readable sequence per network), so they are allowed to be longer.
LONG_FUNCTIONS_ALLOWED = frozenset({
    "core/modeling/backbones/keras_app_backbones.py:build_keras_xception",
    "core/modeling/backbones/mobilenet_v2.py:build_mobilenet_v2",
    "core/modeling/backbones/mobilenet_v3.py:build_mobilenet_v3",
    "core/modeling/backbones/resnet_v1.py:build_resnet_v1",
    "core/modeling/backbones/xception.py:build_xception",
})


def long_functions(max_lines: int = 80):
  """`path:function` of every function over `max_lines` in the product."""
  found = []
  for path in sorted(ROOT.rglob("*.py")):
    relative = path.relative_to(ROOT)
    if relative.parts[0] in ("tests", "bench", "build") or any(
        part.startswith(".") for part in relative.parts):
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if node.end_lineno - node.lineno + 1 > max_lines:
          found.append(f"{relative.as_posix()}:{node.name}")
  return found


def test_functions_fit_on_a_screen():
  assert set(long_functions()) <= LONG_FUNCTIONS_ALLOWED
