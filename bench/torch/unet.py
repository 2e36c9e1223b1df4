"""The Fashion-MNIST U-Net of `npm run bench:train-image`, in PyTorch.

Mirrors difflab's image U-Net (src/plugins/image/networks/unet.ts,
blocks.ts, common.ts; src/core/nn/) layer for layer, at the default config
of configs/fashion-unet.yaml: channels 32, channel_mult [1, 2, 2], one
residual block per level (two on the way up), attention at 7x7 and in the
middle (4 heads), GroupNorm with 8 groups (eps 1e-5), sinusoidal noise
embedding (32 features, max period 10000) -> Linear(32, 128) -> SiLU ->
Linear(128, 128), SiLU(emb) projected into every residual block, strided 3x3
conv down-sampling (padding 1), nearest 2x up-sampling + 3x3 conv, output
GN -> SiLU -> conv3x3 (zero-initialized, as are every residual block's second
conv and every attention output projection). 1,112,801 parameters at
28x28x1; the script checks the count against difflab's (--expect-params) and
exits with an error on a mismatch.

Training step (same as difflab's DSM step for eps-prediction on the linear
VP schedule): x = x0 + sigma eps (VE frame), F(x / sqrt(1 + sigma^2), t),
loss = mean (F - eps)^2, AdamW (lr 5e-4, betas 0.9/0.999, eps 1e-8, weight
decay 0), gradient norm clipped to 1. Sampling: DPM-Solver++(2M) (k-diffusion
`sample_dpmpp_2m`, difflab's `dpmpp-2m`) on the sigmas and the per-sigma
network inputs (c_in, c_noise) difflab computed (--plan JSON), denoiser
D(x; sigma) = x - sigma F(c_in x, c_noise), under torch.inference_mode.

Prints one JSON object (last line of stdout): per-step and per-run times of
the timed repetitions (warm-up excluded), parameter count, threads used,
torch version, 1-minute load average at the start of each phase, and an
optional torch.profiler table of one training step.

Usage: python unet.py --threads N [--warmup W] [--steps S] [--plan FILE]
         [--sample-batch B] [--sample-warmup W] [--sample-runs R]
         [--expect-params P] [--channels-last] [--sdpa] [--profile] [--device cuda]
  (the common flags and the JSON scaffolding are in runner.py)
"""
import argparse
import json
import math
import statistics
import time

import runner


def build(torch, nn, F, sdpa: bool):
    class Emb(nn.Module):
        """Sinusoidal features of c_noise -> Linear -> SiLU -> Linear (difflab's NoiseEmbedding)."""

        def __init__(self, dim: int, hidden: int, max_period: float = 10000.0):
            super().__init__()
            half = dim // 2
            step = math.log(max_period) / max(half - 1, 1)
            self.register_buffer("freqs", torch.exp(-step * torch.arange(half, dtype=torch.float32)), persistent=False)
            self.lin1 = nn.Linear(dim, hidden)
            self.lin2 = nn.Linear(hidden, hidden)

        def forward(self, t):
            a = t.float()[:, None] * self.freqs[None, :]
            f = torch.cat([torch.sin(a), torch.cos(a)], dim=1)
            return self.lin2(F.silu(self.lin1(f)))

    def zero(m):
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)
        return m

    class ResBlock(nn.Module):
        def __init__(self, cin: int, cout: int, emb: int, groups: int):
            super().__init__()
            self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
            self.emb_proj = nn.Linear(emb, cout)
            self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
            self.conv2 = zero(nn.Conv2d(cout, cout, 3, padding=1))
            self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

        def forward(self, x, emb_act):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.emb_proj(emb_act)[:, :, None, None]
            h = self.conv2(F.silu(self.norm2(h)))  # dropout 0
            return (self.skip(x) if self.skip is not None else x) + h

    class Attn(nn.Module):
        """x + out(MHSA(GN(x))) over the H*W positions; q, k, v are consecutive thirds of one Linear."""

        def __init__(self, c: int, heads: int, groups: int):
            super().__init__()
            self.heads = heads
            self.norm = nn.GroupNorm(groups, c, eps=1e-5)
            self.qkv = nn.Linear(c, 3 * c)
            self.out = zero(nn.Linear(c, c))

        def forward(self, x):
            b, c, hh, ww = x.shape
            l = hh * ww
            h, dh = self.heads, c // self.heads
            seq = self.norm(x).reshape(b, c, l).transpose(1, 2)  # [B, L, C]
            q, k, v = self.qkv(seq).chunk(3, dim=2)
            split = lambda t: t.reshape(b, l, h, dh).transpose(1, 2)  # [B, H, L, dh]
            if sdpa:
                o = F.scaled_dot_product_attention(split(q), split(k), split(v))
            else:
                w = torch.softmax(torch.matmul(split(q) * (1.0 / math.sqrt(dh)), split(k).transpose(-1, -2)), dim=-1)
                o = torch.matmul(w, split(v))
            o = self.out(o.transpose(1, 2).reshape(b, l, c))
            return x + o.transpose(1, 2).reshape(b, c, hh, ww)

    class Downsample(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

        def forward(self, x):
            return self.conv(x)

    class Upsample(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x, hh: int, ww: int):
            up = F.interpolate(x, scale_factor=2, mode="nearest")
            if up.shape[2] != hh or up.shape[3] != ww:
                up = up[:, :, :hh, :ww]
            return self.conv(up)

    class UNet(nn.Module):
        def __init__(self, size=28, in_ch=1, channels=32, mult=(1, 2, 2), num_res=1, attn_res=(7,), mid_attn=True, heads=4, groups=8):
            super().__init__()
            emb = 4 * channels
            self.noise_emb = Emb(channels, emb)
            res = []
            r = size
            for _ in mult:
                res.append(r)
                r = math.ceil(r / 2)
            self.conv_in = nn.Conv2d(in_ch, channels, 3, padding=1)
            ch = channels
            skips = [ch]
            self.down_res = nn.ModuleList()
            self.down_attn = nn.ModuleList()
            self.downsamplers = nn.ModuleList()
            for i, m in enumerate(mult):
                out = channels * m
                rb, ab = nn.ModuleList(), nn.ModuleList()
                for _ in range(num_res):
                    rb.append(ResBlock(ch, out, emb, groups))
                    ch = out
                    ab.append(Attn(ch, heads, groups) if res[i] in attn_res else nn.Identity())
                    skips.append(ch)
                self.down_res.append(rb)
                self.down_attn.append(ab)
                if i < len(mult) - 1:
                    self.downsamplers.append(Downsample(ch))
                    skips.append(ch)
                else:
                    self.downsamplers.append(nn.Identity())
            self.mid_res1 = ResBlock(ch, ch, emb, groups)
            self.mid_attn = Attn(ch, heads, groups) if mid_attn else nn.Identity()
            self.mid_res2 = ResBlock(ch, ch, emb, groups)
            up_res, up_attn, upsamplers = [None] * len(mult), [None] * len(mult), [None] * len(mult)
            for i in reversed(range(len(mult))):
                out = channels * mult[i]
                rb, ab = nn.ModuleList(), nn.ModuleList()
                for _ in range(num_res + 1):
                    rb.append(ResBlock(ch + skips.pop(), out, emb, groups))
                    ch = out
                    ab.append(Attn(ch, heads, groups) if res[i] in attn_res else nn.Identity())
                up_res[i], up_attn[i] = rb, ab
                upsamplers[i] = Upsample(ch) if i > 0 else nn.Identity()
            assert not skips, "unused skip connections"
            self.up_res = nn.ModuleList(up_res)
            self.up_attn = nn.ModuleList(up_attn)
            self.upsamplers = nn.ModuleList(upsamplers)
            self.norm_out = nn.GroupNorm(groups, ch, eps=1e-5)
            self.conv_out = zero(nn.Conv2d(ch, in_ch, 3, padding=1))
            self.n_levels = len(mult)

        def forward(self, x, c_noise):
            emb_act = F.silu(self.noise_emb(c_noise))
            h = self.conv_in(x)
            skips = [h]
            for i in range(self.n_levels):
                for rb, ab in zip(self.down_res[i], self.down_attn[i]):
                    h = ab(rb(h, emb_act))
                    skips.append(h)
                if i < self.n_levels - 1:
                    h = self.downsamplers[i](h)
                    skips.append(h)
            h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb_act)), emb_act)
            for i in reversed(range(self.n_levels)):
                for rb, ab in zip(self.up_res[i], self.up_attn[i]):
                    h = ab(rb(torch.cat([h, skips.pop()], dim=1), emb_act))
                if i > 0:
                    t = skips[-1]
                    h = self.upsamplers[i](h, t.shape[2], t.shape[3])
            return self.conv_out(F.silu(self.norm_out(h)))

    return UNet


def main() -> None:
    ap = argparse.ArgumentParser()
    runner.add_common_args(ap)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--plan", help="JSON from bench/train-image.ts: sigmas, c_in, c_noise (omit: no sampling)")
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--sample-warmup", type=int, default=1)
    ap.add_argument("--sample-runs", type=int, default=3)
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format (tfjs's layout)")
    ap.add_argument("--sdpa", action="store_true", help="F.scaled_dot_product_attention instead of matmul-softmax-matmul")
    a = ap.parse_args()

    torch, nn, F, dev = runner.setup(a)
    UNet = build(torch, nn, F, a.sdpa)
    net = UNet(size=a.size)
    params = runner.check_params(torch, net, a)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(dev).to(memory_format=fmt)

    # Linear VP schedule (beta 1e-4..0.02, T = 1000) in the VE frame: sigma_t = sqrt((1 - abar_t) / abar_t).
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    sigmas_t = ((1 - abar) / abar).sqrt()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    g = torch.Generator().manual_seed(1234)
    B, S = a.batch, a.size
    x0 = (torch.rand(B, 1, S, S, generator=g) * 2 - 1).to(dev).contiguous(memory_format=fmt)

    def step() -> float:
        t = torch.randint(0, 1000, (B,), generator=g)
        sigma = sigmas_t[t].float().to(dev)
        eps = torch.randn(B, 1, S, S, generator=g).to(dev).contiguous(memory_format=fmt)
        x = x0 + sigma[:, None, None, None] * eps
        c_in = (1 / torch.sqrt(1 + sigma**2))[:, None, None, None]
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(c_in * x, t.float().to(dev)), eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), a.grad_clip)
        opt.step()
        return loss.item()  # .item() synchronizes, so the step is complete

    out = runner.info(torch, a, params, channels_last=a.channels_last, sdpa=a.sdpa)
    net.train()
    out["train"] = runner.time_steps(step, a, B, "images")
    if a.profile:
        out["profile"] = runner.profile_step(step)

    if a.plan:
        with open(a.plan) as f:
            plan = json.load(f)
        sig = [float(s) for s in plan["sigmas"]]
        c_in = [float(c) for c in plan["c_in"]]
        c_noise = [float(c) for c in plan["c_noise"]]
        net.eval()
        n = a.sample_batch

        def denoise(x, i):
            cn = torch.full((n,), c_noise[i], dtype=torch.float32, device=dev)
            return x - sig[i] * net(c_in[i] * x, cn)

        def sample(steps: int):
            # k-diffusion sample_dpmpp_2m on the first `steps` sigmas (the warm-up uses fewer).
            s = sig[: steps + 1] if steps < len(sig) - 1 else sig
            x = (torch.randn(n, 1, S, S, generator=g) * s[0]).to(dev).contiguous(memory_format=fmt)
            old = None
            nfe = 0
            with torch.inference_mode():
                for i in range(len(s) - 1):
                    d = denoise(x, i)
                    nfe += 1
                    if s[i + 1] == 0:
                        x = d
                    else:
                        h = math.log(s[i] / s[i + 1])
                        dd = d
                        if old is not None:
                            r = math.log(s[i - 1] / s[i]) / h
                            dd = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * old
                        x = (s[i + 1] / s[i]) * x - math.expm1(-h) * dd
                    old = d
                x.sum().item()
            return nfe

        load_sample = runner.loadavg()
        for _ in range(a.sample_warmup):
            sample(2)
        run_ms = []
        nfe = 0
        for _ in range(a.sample_runs):
            t0 = time.perf_counter()
            nfe = sample(len(sig) - 1)
            run_ms.append((time.perf_counter() - t0) * 1000.0)
        med = statistics.median(run_ms)
        out["sample"] = {
            "loadavg1_at_start": load_sample,
            "batch": n,
            "nfe": nfe,
            "warmup": a.sample_warmup,
            "run_ms": run_ms,
            "median_ms": med,
            "images_per_s": n * 1000.0 / med,
        }

    runner.emit(out)


if __name__ == "__main__":
    main()
