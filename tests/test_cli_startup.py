"""Start-up: `import vpzoo`, `vpzoo --help`, `vpzoo list` and `vpzoo list --checkpoints` import no Lightning (nor
torch or torchmetrics); they run in fresh subprocesses, as a user's shell would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("lightning", "pytorch_lightning", "torchmetrics", "torch")

PROBE = r"""
import contextlib, io, json, sys
from vpzoo.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "out": out.getvalue(), "heavy": sorted(m for m in json.loads(sys.argv[2])
                                                                           if m in sys.modules)}))
"""


def run_probe(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("VPZOO_CHECKPOINTS", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "svg*"], ["list", "--checkpoints"]],
                         ids=lambda a: " ".join(a))
def test_listing_and_help_import_no_lightning(args):
    result = run_probe(args)
    assert result["code"] == 0
    assert result["heavy"] == [], f"vpzoo {' '.join(args)} imported {result['heavy']}"
    if args[:1] == ["list"] and "--checkpoints" not in args:
        assert "svg_lp" in result["out"].split()
    if "--checkpoints" in args:
        assert "svg_lp_smmnist" in result["out"]


def test_import_vpzoo_imports_no_torch():
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = f"import sys, vpzoo; print([m for m in {HEAVY!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_declared_model_names_match_the_registry():
    """`vpzoo list` reads the names from the sources; after importing the models the registry must agree."""
    import vpzoo.models  # noqa: F401
    from vpzoo.registry import _MODELS, declared_models, list_models

    assert declared_models() == sorted(_MODELS)
    assert list_models() == sorted(_MODELS)
    assert list_models("svg*") == ["svg_fp", "svg_lp"]


def test_list_models_includes_models_registered_elsewhere():
    from vpzoo.models.copy_last import CopyLast
    from vpzoo.registry import _MODELS, list_models, register_model

    @register_model("test_startup_copy")
    class Copy(CopyLast):
        pass

    try:
        assert "test_startup_copy" in list_models("test_*")
    finally:
        del _MODELS["test_startup_copy"]
