"""Scaffolding shared by the PyTorch mirrors of the benchmarks (unet.py, diffwave.py).

Each mirror builds its network, checks its parameter count against
difflab's, times warm-up-excluded training steps and prints one JSON object
on the last line of stdout; this module holds those common parts, so the
scripts differ only in their network and training step.

`--device cuda` runs the mirror on a CUDA GPU (bench/gpu/run.sh); random
draws stay on the CPU generator and are moved to the device, so the data do
not depend on the device.
"""
import argparse
import json
import os
import statistics
import sys
import time


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--expect-params", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of one training step")
    ap.add_argument("--count-only", action="store_true", help="print the parameter count and exit")


def setup(a):
    """Imports torch with the run's thread budget and seed; returns (torch, nn, F, device)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    # Must come before any parallel work; one interop thread so --threads is the whole budget.
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {a.device}: torch {torch.__version__} sees no CUDA device")
    return torch, nn, F, torch.device(a.device)


def fail(msg: str, code: int = 2) -> None:
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr)
    sys.exit(code)


def check_params(torch, net, a) -> int:
    """The network's parameter count; exits 3 on a mismatch with --expect-params, prints it and exits with --count-only."""
    params = sum(p.numel() for p in net.parameters())
    if a.expect_params is not None and params != a.expect_params:
        fail(f"parameter count mismatch: PyTorch {params:,} vs difflab {a.expect_params:,}", 3)
    if a.count_only:
        emit({"params": params, "torch": torch.__version__})
        sys.exit(0)
    return params


def info(torch, a, params: int, **extra) -> dict:
    """What the run actually used: torch build, threads, device."""
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "device": a.device,
        "params": params,
    }
    if a.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(torch.device(a.device))
    out.update(extra)
    return out


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def time_steps(step, a, per_step: int, unit: str) -> dict:
    """Warm-up steps, then --steps timed ones (step() returns the loss via .item(), which synchronizes the device)."""
    load = loadavg()
    for _ in range(a.warmup):
        step()
    times, losses = [], []
    for i in range(a.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1000.0)
        print(f"  pytorch {a.threads} thread(s) {a.device}: step {i + 1}/{a.steps} {times[-1]:.0f} ms", file=sys.stderr, flush=True)
    med = statistics.median(times)
    return {
        "loadavg1_at_start": load,
        "warmup": a.warmup,
        "batch": per_step,
        "step_ms": times,
        "median_ms": med,
        "steps_per_s": 1000.0 / med,
        f"{unit}_per_s": per_step * 1000.0 / med,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def profile_step(step, top: int = 12) -> list:
    """torch.profiler's ops of one training step by self CPU time, slowest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    rows = [{"op": e.key, "self_ms": e.self_cpu_time_total / 1000.0, "calls": e.count} for e in prof.key_averages()]
    rows.sort(key=lambda r: -r["self_ms"])
    return rows[:top]


def emit(out: dict) -> None:
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
