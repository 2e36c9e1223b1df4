"""Train Hugging Face diffusers' UNet2DModel + DDPMScheduler on Fashion-MNIST
for a wall-clock budget, then sample it: the reference side of
`npm run bench:quality-image`.

The recipe is diffusers' own examples/unconditional_image_generation/
train_unconditional.py (DDPMScheduler with 1000 linear betas 1e-4..0.02,
epsilon prediction, MSE loss, AdamW with warm-up, EMAModel with warm-up),
with the optimizer knobs (batch, lr, warm-up, gradient clipping, EMA power
and maximum) set to those of the difflab config it is compared with, so the
two sides differ in library and diffusion recipe, not in tuning effort.
The network is UNet2DModel at difflab's U-Net size (1,112,801 parameters).

Output in --out: samples.f32 (raw float32, [n, 28, 28, 1] row-major, in
[-1, 1]) and result.json (steps, wall-clock, losses, sampling time).
Progress goes to stderr. Nothing is downloaded.
"""
import time

T_START = time.monotonic()  # the budget counts from process start, imports included

import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel


def load_fashion(path):
    with gzip.open(os.path.join(path, "train-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051:
        sys.exit(f"{path}/train-images-idx3-ubyte.gz: not an IDX image file (magic {magic})")
    x = np.frombuffer(raw[16:], dtype=np.uint8).reshape(int(n), 1, int(h), int(w))
    return torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)


def build_unet():
    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=None,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder with train-images-idx3-ubyte.gz")
    ap.add_argument("--seconds", type=float, required=True, help="training wall-clock budget, from process start")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps even within the budget (0: no limit)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--ema-power", type=float, default=0.75)
    ap.add_argument("--ema-max", type=float, default=0.999)
    ap.add_argument("--n", type=int, default=1000, help="samples to generate")
    ap.add_argument("--sample-steps", type=int, default=100, help="DDPMScheduler inference steps")
    ap.add_argument("--sample-batch", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    data = load_fashion(args.data)
    model = build_unet()
    params = sum(p.numel() for p in model.parameters())
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup)))
    ema = EMAModel(model.parameters(), decay=args.ema_max, use_ema_warmup=True, inv_gamma=1.0, power=args.ema_power)
    gen = torch.Generator().manual_seed(args.seed)

    print(f"diffusers: UNet2DModel {params:,} parameters, {args.threads} threads, budget {args.seconds:.0f} s", file=sys.stderr)
    losses, step, perm, pos = [], 0, torch.randperm(len(data), generator=gen), 0
    t_train = time.monotonic()
    model.train()
    while time.monotonic() - T_START < args.seconds and (args.max_steps <= 0 or step < args.max_steps):
        if pos + args.batch > len(data):
            perm, pos = torch.randperm(len(data), generator=gen), 0
        x0 = data[perm[pos : pos + args.batch]]
        pos += args.batch
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(model(xt, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        warm.step()
        ema.step(model.parameters())
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            el = time.monotonic() - T_START
            rate = step / (time.monotonic() - t_train)
            recent = sum(losses[-50:]) / 50
            print(f"diffusers: step {step}  loss {recent:.4f}  {rate:.2f} it/s  {el:.0f}/{args.seconds:.0f} s", file=sys.stderr)
    train_seconds = time.monotonic() - T_START

    ema.copy_to(model.parameters())
    model.eval()
    scheduler.set_timesteps(args.sample_steps)
    sgen = torch.Generator().manual_seed(args.seed + 1)
    out = np.empty((args.n, 28, 28, 1), dtype=np.float32)
    t_sample = time.monotonic()
    with torch.no_grad():
        for start in range(0, args.n, args.sample_batch):
            b = min(args.sample_batch, args.n - start)
            x = torch.randn((b, 1, 28, 28), generator=sgen)
            for t in scheduler.timesteps:
                x = scheduler.step(model(x, t).sample, t, x, generator=sgen).prev_sample
            out[start : start + b] = x.permute(0, 2, 3, 1).numpy()
            done = start + b
            rate = done / (time.monotonic() - t_sample)
            print(f"diffusers: sampled {done}/{args.n}  {rate:.2f} samples/s", file=sys.stderr)
    sample_seconds = time.monotonic() - t_sample
    if not np.isfinite(out).all():
        print("diffusers: warning: non-finite samples", file=sys.stderr)

    tmp = os.path.join(args.out, "samples.f32.tmp")
    out.tofile(tmp)
    os.replace(tmp, os.path.join(args.out, "samples.f32"))
    every = max(1, len(losses) // 200)
    result = {
        "library": "diffusers",
        "diffusers_version": __import__("diffusers").__version__,
        "torch_version": torch.__version__,
        "threads": args.threads,
        "parameters": params,
        "steps": step,
        "batch_size": args.batch,
        "train_seconds": train_seconds,
        "train_steps_per_sec": step / (train_seconds - (t_train - T_START)),
        "startup_seconds": t_train - T_START,
        "final_loss": sum(losses[-100:]) / max(1, len(losses[-100:])),
        "loss_curve": [[i + 1, sum(losses[max(0, i + 1 - every) : i + 1]) / len(losses[max(0, i + 1 - every) : i + 1])] for i in range(every - 1, len(losses), every)],
        "sampler": f"DDPMScheduler ancestral, {args.sample_steps} steps",
        "nfe": args.sample_steps,
        "n": args.n,
        "sample_seconds": sample_seconds,
        "samples_per_sec": args.n / sample_seconds,
        "clip_sample": bool(scheduler.config.clip_sample),
    }
    tmp = os.path.join(args.out, "result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, os.path.join(args.out, "result.json"))


if __name__ == "__main__":
    main()
