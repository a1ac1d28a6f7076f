"""Benchmark: process start to the first prediction of a packaged checkpoint, the start-up of the light CLI
commands, and ``vpzoo.load`` alone.

Cold start: a fresh Python process runs ``import torch``, ``import vpzoo``, ``import torchmetrics`` and ``import
lightning`` (what the first ``vpzoo.load`` imports through the model classes, timed apart to say what Lightning
costs), ``import vpzoo.models``, ``vpzoo.load(NAME)`` (registry lookup, sha256 of the weights, model construction,
weights load) and one ``predict`` (5 context frames → 10 frames, 1 sample); each step is timed inside that process,
and the whole process (interpreter start to exit) from outside; ``--repeats`` processes, median and min reported.
"Cold" means a new process: the files are in the OS page cache after the first run (a first run after boot is
slower).

CLI start-up: ``vpzoo --help``, ``vpzoo list`` and ``vpzoo list --checkpoints`` as new processes (``python -m
vpzoo.cli``), with whether they imported Lightning/torch (they must not).

Warm: in one process, repeated ``vpzoo.load(NAME)`` (the file's sha256 is memoised per process after the first
load, so the first in-process load is reported separately) and repeated ``vpzoo.load(FOLDER)`` of the same weights
as a zoo folder.

Which checkpoint: ``--checkpoint NAME``, else ``svg_lp_smmnist`` (the one earlier figures used), else the first
packaged one. While checkpoints.yaml lists none, the benchmark
makes a stand-in: an **untrained** SVG-LP with the SM-MNIST architecture (12.6 M parameters), saved as float16
safetensors, registered in a temporary checkpoints file (``$VPZOO_CHECKPOINTS``) as a ``source: file`` entry.

Timings on a shared CPU are noisy (other jobs, frequency scaling): the output records ``os.getloadavg()`` and says
so; compare medians of runs made back to back.

Usage::

    python benchmarks/bench_load.py [--checkpoint NAME] [--repeats 3] [--threads N] [--out benchmarks/results/load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
threads = int(sys.argv[2])
if threads > 0:
    torch.set_num_threads(threads)
t_torch = time.perf_counter()
import vpzoo
t_vpzoo = time.perf_counter()
import torchmetrics  # Lightning imports it whole (its version check), and vpzoo.metrics needs its Metric
t_torchmetrics = time.perf_counter()
import lightning
t_lightning = time.perf_counter()
import vpzoo.models  # the model classes (LightningModules)
t1 = time.perf_counter()
model = vpzoo.load(sys.argv[1])
t2 = time.perf_counter()
frames = torch.rand(5, model.channels, model.image_size, model.image_size, generator=torch.Generator().manual_seed(0))
pred = model.predict(frames, n_future=10, num_samples=1, seed=0)
t3 = time.perf_counter()
print(json.dumps({"import_torch_s": t_torch - t0, "import_vpzoo_s": t_vpzoo - t_torch,
                  "import_torchmetrics_s": t_torchmetrics - t_vpzoo, "import_lightning_s": t_lightning - t_torchmetrics,
                  "import_models_s": t1 - t_lightning, "load_s": t2 - t1,
                  "first_predict_s": t3 - t2, "total_s": t3 - t0, "shape": list(pred.shape),
                  "threads": torch.get_num_threads()}))
"""

CLI_PROBE = r"""
import contextlib, io, json, sys
from vpzoo.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "imported": [m for m in ("lightning", "torchmetrics", "torch") if m in sys.modules]}))
"""

#: Earlier measurements of the same path, for comparison (benchmarks/README.md; the issue #34 report).
PREVIOUS = {
    "session 6 (bench_load.py, packaged svg_lp_smmnist)": "process start -> first prediction 4.5 s (import torch 1.3 s, "
    "Lightning + models 2.8 s, load 0.16 s, first predict 0.16 s)",
    "issue #34 (a fresh clone, 2 cores)": "vpzoo.load 4.6-7 s, first predict 0.3-6 s more; vpzoo list 5.8 s",
}


def cli_startup(repeats: int, env: dict) -> dict:
    out = {}
    for args in (["--help"], ["list"], ["list", "--checkpoints"]):
        walls, imported = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CLI_PROBE, *args], env=env, capture_output=True, text=True,
                                  timeout=300)
            walls.append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise RuntimeError(f"vpzoo {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
            imported = json.loads(proc.stdout.strip().splitlines()[-1])["imported"]
        out["vpzoo " + " ".join(args)] = {"median": statistics.median(walls), "min": min(walls), "runs": walls,
                                          "imported": imported}
    return out


def make_standin(folder: Path) -> tuple[str, Path]:
    """An untrained full-size SVG-LP (SM-MNIST config), float16, registered in ``folder/checkpoints.yaml``."""
    import torch

    from vpzoo.models import SVGLP
    from vpzoo.zoo.catalog import add_checkpoint, make_checkpoint_entry

    torch.manual_seed(0)
    model = SVGLP()  # the SM-MNIST defaults of the paper
    exported = model.save_pretrained(folder / "exported", dtype="float16")
    registry = folder / "checkpoints.yaml"
    registry.write_text("format_version: 1\ncheckpoints: []\n")
    metrics = [{"metric": "ssim", "protocol": "svg", "num_samples": 1, "value": 0.0}]  # placeholder: untrained
    training = {"config": "configs/svg_lp/smmnist.yaml", "steps": 0, "hardware": "none", "time": "0 s"}
    entry = make_checkpoint_entry(exported, name="bench_svg_lp_untrained", dataset="smmnist", metrics=metrics,
                                  training=training, copy_to="weights/bench_svg_lp_untrained.safetensors",
                                  path=registry, notes="untrained stand-in made by benchmarks/bench_load.py")
    add_checkpoint(entry, registry)
    return entry["name"], registry


def cold_start(name: str, repeats: int, threads: int, env: dict) -> list[dict]:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", COLD_SCRIPT, name, str(threads)], env=env, capture_output=True,
                              text=True, timeout=600)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start run failed:\n{proc.stderr[-3000:]}")
        runs.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "process_wall_s": wall})
    return runs


def warm_loads(name: str, folder: Path, repeats: int) -> dict:
    import vpzoo

    t = time.perf_counter()
    model = vpzoo.load(name)
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        vpzoo.load(name)
        times.append(time.perf_counter() - t)
    out = {"first_in_process_s": first, "repeat_s": times}
    model.save_pretrained(folder)
    vpzoo.load(folder)
    folder_times = []
    for _ in range(repeats):
        t = time.perf_counter()
        vpzoo.load(folder)
        folder_times.append(time.perf_counter() - t)
    out["folder_repeat_s"] = folder_times
    out["parameters"] = model.num_parameters()
    out["weights_bytes"] = Path(model.zoo_info["weights"]).stat().st_size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="registered checkpoint name (default: the first packaged one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "load.json"))
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="vpzoo-bench-load-") as tmp:
        run(args, Path(tmp), env)


def run(args: argparse.Namespace, tmp: Path, env: dict) -> None:
    import torch

    import vpzoo

    registered = vpzoo.list_checkpoints()
    name = args.checkpoint or ("svg_lp_smmnist" if "svg_lp_smmnist" in registered else next(iter(registered), None))
    if name is None:
        name, registry = make_standin(tmp)
        os.environ["VPZOO_CHECKPOINTS"] = env["VPZOO_CHECKPOINTS"] = str(registry)
        which = (f"{name}: an UNTRAINED stand-in (SVG-LP, SM-MNIST architecture, float16), because checkpoints.yaml "
                 "lists no packaged checkpoint yet; registered in a temporary checkpoints file")
        packaged = False
    else:
        which = f"{name}: packaged checkpoint from {vpzoo.zoo.checkpoints_file()}"
        packaged = True
    print(f"checkpoint {which}")

    load_before = os.getloadavg()
    runs = cold_start(name, args.repeats, args.threads, env)
    cli = cli_startup(args.repeats, env)
    warm = warm_loads(name, tmp / "folder", max(args.repeats, 3))

    def stat(key: str) -> dict:
        values = [r[key] for r in runs]
        return {"median": statistics.median(values), "min": min(values), "runs": values}

    cold = {k: stat(k) for k in ("import_torch_s", "import_vpzoo_s", "import_torchmetrics_s", "import_lightning_s",
                                 "import_models_s", "load_s", "first_predict_s", "total_s", "process_wall_s")}
    rows = [
        ("cold: import torch", cold["import_torch_s"]),
        ("cold: import vpzoo", cold["import_vpzoo_s"]),
        ("cold: import torchmetrics (pulled in by Lightning)", cold["import_torchmetrics_s"]),
        ("cold: import lightning (the rest of it)", cold["import_lightning_s"]),
        ("cold: import vpzoo.models (model classes)", cold["import_models_s"]),
        ("cold: vpzoo.load(name) incl. sha256", cold["load_s"]),
        ("cold: first predict (5 -> 10 frames, 1 sample)", cold["first_predict_s"]),
        ("cold: in-process total, import torch -> prediction", cold["total_s"]),
        ("cold: process start -> exit after first prediction", cold["process_wall_s"]),
    ]
    print(f"\n{'step':<55} {'median s':>9} {'min s':>9}")
    for label, s in rows:
        print(f"{label:<55} {s['median']:>9.3f} {s['min']:>9.3f}")
    lightning_cost = cold["import_torchmetrics_s"]["median"] + cold["import_lightning_s"]["median"]
    print(f"{'  of which Lightning (torchmetrics + lightning)':<55} {lightning_cost:>9.3f}")
    for label, c in cli.items():
        print(f"{'cli: ' + label + ' (process)':<55} {c['median']:>9.3f} {c['min']:>9.3f}   imported: "
              f"{', '.join(c['imported']) or 'none of lightning, torchmetrics, torch'}")
    warm_rows = [
        ("warm: first vpzoo.load(name) in a process (+imports)", [warm["first_in_process_s"]]),
        ("warm: repeat vpzoo.load(name)", warm["repeat_s"]),
        ("warm: repeat vpzoo.load(folder)", warm["folder_repeat_s"]),
    ]
    for label, values in warm_rows:
        print(f"{label:<55} {statistics.median(values):>9.3f} {min(values):>9.3f}")
    print(f"\n{warm['parameters']:,} parameters, weights file {warm['weights_bytes']:,} bytes; torch threads "
          f"{runs[0]['threads']}; {args.repeats} processes each; {os.cpu_count()} CPUs, load average "
          f"{load_before[0]:.2f} before / {os.getloadavg()[0]:.2f} after")
    print("NOTE: measured on a shared machine; other jobs and frequency scaling make these timings noisy "
          "(compare medians of back-to-back runs).")
    print("previous figures:")
    for label, text in PREVIOUS.items():
        print(f"  {label}: {text}")

    result = {
        "benchmark": "bench_load",
        "checkpoint": name,
        "packaged_checkpoint": packaged,
        "note": which,
        "parameters": warm["parameters"],
        "weights_bytes": warm["weights_bytes"],
        "cold_start": cold,
        "cli_startup": cli,
        "warm": warm,
        "previous": PREVIOUS,
        "noise": "shared CPU: other jobs and frequency scaling make timings noisy",
        "torch_threads": runs[0]["threads"],
        "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "load_average_before": load_before,
                    "load_average": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
