"""The DiffWave denoiser of `npm run bench:train-audio`, in PyTorch, and its timing runner.

Mirrors difflab's audio denoiser (src/plugins/audio/diffwave.ts; the layers
of src/core/nn/layers.ts and embeddings.ts) layer for layer, at the model of
configs/audio-fsdd.yaml: C = 32 residual channels, 20 residual layers,
dilation 2^(i mod 10), kernel 3 ('same' padding = dilation on each side),
sinusoidal noise features (128, max period 10000, c_noise unscaled) ->
Linear(128, 512) -> SiLU -> Linear(512, 512), plus a class embedding
(10 digits + 1 null class, 512 wide) added before the SiLU:

    h = ReLU(Conv1x1(x));  e = SiLU(MLP(features(c_noise)) + class_emb(label))
    layer: y = DilatedConv(h + Linear(e)); g = tanh(y[:C]) * sigmoid(y[C:])
           r, s = split(Conv1x1(g)); h = (h + r) / sqrt(2); skips += s
    out = Conv1x1_zero(ReLU(Conv1x1(skips / sqrt(N))))

difflab runs its 1x1 convolutions as Linear layers on [B*T, C]
(channels-last); here they are nn.Conv1d(k=1) on PyTorch's default [B, C, T]
layout: the same maps and parameter counts (284,929 at the FSDD config), the
same FLOPs. The last 1x1 conv starts at zero, as difflab's. The script checks
its parameter count against difflab's (--expect-params) and exits with code 3
on a mismatch.

Training step (difflab's DSM step, src/core/objectives.ts
`dsmPerSampleLossGivenNoise`, under EDM preconditioning, Karras et al. 2022):
ln sigma ~ N(p_mean, p_std^2), x = x0 + sigma eps,
c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4,
target = (x0 - c_skip x) / c_out, per clip mean (F(c_in x, c_noise, label) -
target)^2 times lambda(sigma) c_out^2 with EDM's lambda = (sigma^2 + sd_w^2) /
(sigma sd_w)^2, batch mean; labels uniform over the classes, replaced by the
null class with p = cond_dropout; AdamW (decoupled weight decay), gradient
norm clipped. Batches are synthetic (x0 uniform in [-1, 1]): speed does not
depend on the samples.

Prints one JSON object (last line of stdout): per-step times of the timed
steps (warm-up excluded), median, clips/s, parameter count, threads used,
torch version, the 1-minute load average at the start, and optionally a
torch.profiler table of one training step.

Usage: python diffwave.py --threads N [--warmup W] [--steps S] [--batch B]
         [--length T] [--channels C] [--layers N] [--dilation-cycle K]
         [--kernel-size K] [--embedding-dim D] [--embedding-hidden H]
         [--classes K | --classes 0] [--sigma-data SD] [--weighting-sigma-data SD]
         [--p-mean M] [--p-std S] [--cond-dropout P] [--lr LR]
         [--weight-decay W] [--beta1 B1] [--beta2 B2] [--grad-clip G | --grad-clip 0]
         [--expect-params P] [--profile] [--count-only] [--device cuda]
  (the common flags and the JSON scaffolding are in runner.py)
"""
import argparse
import math

import runner


def build(torch, nn, F):
    class NoiseEmbedding(nn.Module):
        """DDPM sinusoidal features of c_noise -> Linear -> SiLU -> Linear (difflab's NoiseEmbedding, kind 'sinusoidal')."""

        def __init__(self, dim: int, hidden: int, max_period: float = 10000.0):
            super().__init__()
            half = dim // 2
            step = math.log(max_period) / max(half - 1, 1)
            self.register_buffer("freqs", torch.exp(-step * torch.arange(half, dtype=torch.float32)), persistent=False)
            self.odd = dim % 2 == 1
            self.lin1 = nn.Linear(dim, hidden)
            self.lin2 = nn.Linear(hidden, hidden)

        def forward(self, t):
            a = t.float()[:, None] * self.freqs[None, :]
            parts = [torch.sin(a), torch.cos(a)]
            if self.odd:
                parts.append(torch.zeros(t.shape[0], 1, device=t.device))
            return self.lin2(F.silu(self.lin1(torch.cat(parts, dim=1))))

    class ResidualLayer(nn.Module):
        def __init__(self, c: int, emb: int, kernel: int, dilation: int):
            super().__init__()
            self.c = c
            self.noise_projection = nn.Linear(emb, c)
            # 'same' padding for an odd kernel: (k - 1) / 2 * dilation on each side (tfjs 'same' at stride 1).
            self.dilated_conv = nn.Conv1d(c, 2 * c, kernel, dilation=dilation, padding=(kernel - 1) // 2 * dilation)
            self.output_projection = nn.Conv1d(c, 2 * c, 1)

        def forward(self, h, e):
            y = self.dilated_conv(h + self.noise_projection(e)[:, :, None])
            filt, gate = torch.chunk(y, 2, dim=1)
            r, s = torch.chunk(self.output_projection(torch.tanh(filt) * torch.sigmoid(gate)), 2, dim=1)
            return (h + r) * math.sqrt(0.5), s

    class DiffWave(nn.Module):
        def __init__(self, channels=32, layers=20, cycle=10, kernel=3, emb_dim=128, hidden=512, classes=10):
            super().__init__()
            self.input_projection = nn.Conv1d(1, channels, 1)
            self.noise_emb = NoiseEmbedding(emb_dim, hidden)
            self.classes = classes
            self.label_emb = nn.Embedding(classes + 1, hidden) if classes > 0 else None
            self.layers = nn.ModuleList(ResidualLayer(channels, hidden, kernel, 2 ** (i % cycle)) for i in range(layers))
            self.skip_projection = nn.Conv1d(channels, channels, 1)
            self.output_projection = nn.Conv1d(channels, 1, 1)
            nn.init.zeros_(self.output_projection.weight)
            nn.init.zeros_(self.output_projection.bias)

        def forward(self, x, c_noise, labels=None):
            emb = self.noise_emb(c_noise)
            if self.label_emb is not None:
                ids = labels if labels is not None else torch.full((x.shape[0],), self.classes, dtype=torch.long, device=x.device)
                emb = emb + self.label_emb(ids)
            e = F.silu(emb)
            h = F.relu(self.input_projection(x))
            skips = None
            for layer in self.layers:
                h, s = layer(h, e)
                skips = s if skips is None else skips + s
            s = skips * (1.0 / math.sqrt(len(self.layers)))
            return self.output_projection(F.relu(self.skip_projection(s)))

    return DiffWave


def main() -> None:
    ap = argparse.ArgumentParser()
    runner.add_common_args(ap)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=4800)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dilation-cycle", type=int, default=10)
    ap.add_argument("--kernel-size", type=int, default=3)
    ap.add_argument("--embedding-dim", type=int, default=64)
    ap.add_argument("--embedding-hidden", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10, help="0: unconditional")
    ap.add_argument("--sigma-data", type=float, default=0.16)
    ap.add_argument("--weighting-sigma-data", type=float, default=0.16)
    ap.add_argument("--p-mean", type=float, default=-2.8)
    ap.add_argument("--p-std", type=float, default=1.4)
    ap.add_argument("--cond-dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--grad-clip", type=float, default=1.0, help="0: no clipping")
    a = ap.parse_args()

    torch, nn, F, dev = runner.setup(a)
    DiffWave = build(torch, nn, F)
    net = DiffWave(a.channels, a.layers, a.dilation_cycle, a.kernel_size, a.embedding_dim, a.embedding_hidden, a.classes)
    params = runner.check_params(torch, net, a)
    net = net.to(dev)

    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), eps=1e-8, weight_decay=a.weight_decay)
    g = torch.Generator().manual_seed(1234)
    B, T = a.batch, a.length
    sd, sdw = a.sigma_data, a.weighting_sigma_data
    x0 = (torch.rand(B, 1, T, generator=g) * 2 - 1).to(dev)

    def step() -> float:
        sigma = torch.exp(a.p_mean + a.p_std * torch.randn(B, generator=g)).to(dev)
        eps = torch.randn(B, 1, T, generator=g).to(dev)
        labels = None
        if a.classes > 0:
            labels = torch.randint(0, a.classes, (B,), generator=g)
            labels = torch.where(torch.rand(B, generator=g) < a.cond_dropout, torch.full_like(labels, a.classes), labels).to(dev)
        s2 = sigma**2
        c_skip = sd**2 / (s2 + sd**2)
        c_out = sigma * sd / torch.sqrt(s2 + sd**2)
        c_in = 1 / torch.sqrt(s2 + sd**2)
        c_noise = torch.log(sigma) / 4
        weight = (s2 + sdw**2) / (sigma * sdw) ** 2 * c_out**2
        col = lambda v: v[:, None, None]
        x = x0 + col(sigma) * eps
        target = (x0 - col(c_skip) * x) / col(c_out)
        opt.zero_grad(set_to_none=True)
        f = net(col(c_in) * x, c_noise, labels)
        per_clip = torch.mean((f - target) ** 2, dim=(1, 2))
        loss = torch.mean(per_clip * weight)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), a.grad_clip)
        opt.step()
        return loss.item()  # .item() synchronizes, so the step is complete

    out = runner.info(torch, a, params, layout="NCW (PyTorch default)")
    net.train()
    out["train"] = {**runner.time_steps(step, a, B, "clips"), "length": T}
    if a.profile:
        out["profile"] = runner.profile_step(step)
    runner.emit(out)


if __name__ == "__main__":
    main()
