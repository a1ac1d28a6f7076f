"""tools/wheelhouse.sh: it parses, its dry run prints the pip download for the given Python and manylinux x86-64
with the packages an image with torch/Lightning/torchmetrics/huggingface_hub/safetensors lacks, and bad arguments
are refused. (Nothing is downloaded here.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "wheelhouse.sh"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


def test_script_parses_and_dry_run_prints_the_download(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    proc = run("--dry-run", "3.10", str(tmp_path / "wheels"))
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.split()
    assert cmd[:4] == ["python3", "-m", "pip", "download"]
    for flag in ("--no-deps", "--only-binary=:all:"):
        assert flag in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.10" and cmd[cmd.index("--dest") + 1] == str(tmp_path / "wheels")
    platforms = {cmd[i + 1] for i, c in enumerate(cmd) if c == "--platform"}
    assert {"manylinux2014_x86_64", "manylinux_2_28_x86_64"} <= platforms
    names = {c.split("\\>")[0].split(">")[0] for c in cmd if ">=" in c.replace("\\", "")}
    assert names == {"jsonargparse", "docstring-parser", "typeshed-client", "omegaconf", "mlxtend"}
    assert not any(c.startswith(("torch", "lightning", "huggingface", "safetensors")) for c in cmd)
    assert not (tmp_path / "wheels").exists()
    full = run("--dry-run", "--full", "3.12", str(tmp_path / "w")).stdout
    assert "av\\>=11" in full and "tensorboard\\>=2.14" in full and "torchvision" not in full
    assert "pillow" not in full        # torchvision brings Pillow: only --pillow adds its ~6.8 MB wheel
    assert "pillow\\>=9" in run("--dry-run", "--pillow", "3.11", str(tmp_path / "w")).stdout


def test_bad_arguments_are_refused(tmp_path):
    for args in (("3.11",), ("--nope", "3.11", str(tmp_path))):
        proc = run(*args)
        assert proc.returncode == 2 and "usage:" in proc.stderr, (args, proc.stderr)
    for version in ("3", "python3.11", "3.11.7"):
        proc = run(version, str(tmp_path / "w"))
        assert proc.returncode == 2 and "must look like 3.11" in proc.stderr
    assert not (tmp_path / "w").exists()
