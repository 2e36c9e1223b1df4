"""The benchmark network of `npm run bench:backend`, in PyTorch.

Same network as bench/backend.ts: 3x3 convs (1->64, three 64->64, 64->1),
SiLU between them, MSE against a fixed target, Adam(lr=1e-3), batch 32 of
28x28x1. Prints one JSON object: per-step times of the timed steps (warm-up
excluded) and what the run actually used (threads, torch build).

Usage: python backend_net.py --threads N [--warmup W] [--steps S]
"""
import argparse
import json
import statistics
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--hidden-layers", type=int, default=3)
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format (tfjs's layout)")
    a = ap.parse_args()

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    # Must come before any parallel work; one interop thread so --threads is the whole budget.
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    c = a.channels
    layers = [nn.Conv2d(1, c, 3, padding=1), nn.SiLU()]
    for _ in range(a.hidden_layers):
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.SiLU()]
    layers += [nn.Conv2d(c, 1, 3, padding=1)]
    net = nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(a.batch, 1, a.size, a.size)
    y = torch.randn(a.batch, 1, a.size, a.size)
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.contiguous(memory_format=torch.channels_last)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # .item() synchronizes, so the step is complete

    for _ in range(a.warmup):
        step()
    times = []
    losses = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1000.0)

    median = statistics.median(times)
    json.dump(
        {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "channels_last": a.channels_last,
            "params": sum(p.numel() for p in net.parameters()),
            "warmup": a.warmup,
            "step_ms": times,
            "median_ms": median,
            "steps_per_s": 1000.0 / median,
            "first_loss": losses[0],
            "last_loss": losses[-1],
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
