"""The text plugin's Diffusion-LM transformer (src/plugins/text/transformer.ts) in PyTorch,
trained with the same objective, for `npm run bench:train-text`.

Layer for layer: token embedding [V, E] (N(0, 1)), tied rounding head (x EMB^T + b),
Linear E->W, learned positions [L, W], sinusoidal noise features (DDPM's, max period 10000)
-> Linear -> SiLU -> Linear, pre-LayerNorm blocks (adaLN: LayerNorms without affine,
scale/shift from a zero-initialised Linear of SiLU(e); or 'add': the embedding added to
every position and affine LayerNorms), multi-head self-attention (fused qkv Linear, out
Linear), GELU (tanh) MLP, final LayerNorm and Linear W->E.

Objective (as difflab's engine + text loss adapter): x0 = EMB(w); sigma = the schedule's
discrete sigmas[i], i ~ U{0..T-1} (passed in --sigmas-file), c_noise = i, c_in = 1/sqrt(1+sigma^2);
x0-prediction MSE (mean) + embedding term ||D(x0 + sigma_0 eps; sigma_0) - x0||^2 + rounding
CE(logits(x0 + sigma_0 eps), w) + prior alpha_bar_T mean(x0^2); AdamW, global-norm clipping.

Prints one JSON line: params, step times (ms), median, tokens/s.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoidal(t, dim, max_period=10000.0):
    half = dim // 2
    step = math.log(max_period) / max(half - 1, 1)
    freqs = torch.exp(-step * torch.arange(half, dtype=torch.float32))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2 == 1:
        emb = torch.cat([emb, torch.zeros(t.shape[0], 1)], dim=1)
    return emb


class Block(nn.Module):
    def __init__(self, width, heads, hidden, adaln):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=not adaln)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.modulation = nn.Linear(width, 4 * width) if adaln else None
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def attention(self, a):
        b, l, w = a.shape
        q, k, v = self.qkv(a).split(w, dim=2)
        heads = lambda t: t.reshape(b, l, self.heads, w // self.heads).transpose(1, 2)
        # The same matMul + softmax attention as difflab's MultiHeadSelfAttention.
        scores = (heads(q) / math.sqrt(w // self.heads)) @ heads(k).transpose(-1, -2)
        o = torch.softmax(scores, dim=-1) @ heads(v)
        return self.out(o.transpose(1, 2).reshape(b, l, w))

    def forward(self, h, c):
        a = self.norm1(h)
        if self.modulation is not None:
            shift1, scale1, shift2, scale2 = self.modulation(c)[:, None, :].chunk(4, dim=2)
            a = a * (1 + scale1) + shift1
        h = h + self.attention(a)
        m = self.norm2(h)
        if self.modulation is not None:
            m = m * (1 + scale2) + shift2
        return h + self.fc2(F.gelu(self.fc1(m), approximate="tanh"))


class TextTransformer(nn.Module):
    def __init__(self, vocab, seq_len, dim, width, layers, heads, hidden, noise_dim, adaln):
        super().__init__()
        self.noise_dim = noise_dim
        self.adaln = adaln
        self.embedding = nn.Embedding(vocab, dim)
        self.rounding_bias = nn.Parameter(torch.zeros(vocab))
        self.input_projection = nn.Linear(dim, width)
        self.positions = nn.Parameter(torch.randn(seq_len, width) * 0.02)
        self.noise_mlp = nn.Sequential(nn.Linear(noise_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([Block(width, heads, hidden, adaln) for _ in range(layers)])
        self.output_norm = nn.LayerNorm(width)
        self.output_projection = nn.Linear(width, dim)

    def forward(self, x, c_noise):
        e = self.noise_mlp(sinusoidal(c_noise, self.noise_dim))
        h = self.input_projection(x) + self.positions
        if not self.adaln:
            h = h + e[:, None, :]
        c = F.silu(e)
        for blk in self.blocks:
            h = blk(h, c)
        return self.output_projection(self.output_norm(h))

    def logits(self, x0):
        return x0 @ self.embedding.weight.t() + self.rounding_bias


def main():
    p = argparse.ArgumentParser()
    for name, typ in [("threads", int), ("warmup", int), ("steps", int), ("batch", int), ("vocab", int), ("seq-len", int), ("dim", int),
                      ("width", int), ("layers", int), ("heads", int), ("hidden", int), ("noise-dim", int), ("lr", float),
                      ("weight-decay", float), ("beta1", float), ("beta2", float), ("grad-clip", float), ("expect-params", int),
                      ("w-embedding", float), ("w-rounding", float), ("w-prior", float)]:
        p.add_argument(f"--{name}", type=typ, required=True)
    p.add_argument("--conditioning", choices=["adaln", "add"], required=True)
    p.add_argument("--sigmas-file", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    sigmas = torch.tensor(json.load(open(a.sigmas_file)), dtype=torch.float32)
    sigma_min, sigma_max = float(sigmas.min()), float(sigmas.max())
    net = TextTransformer(a.vocab, a.seq_len, a.dim, a.width, a.layers, a.heads, a.hidden, a.noise_dim, a.conditioning == "adaln")
    params = sum(t.numel() for t in net.parameters())
    if params != a.expect_params:
        print(f"parameter count mismatch: PyTorch {params}, difflab {a.expect_params}", file=sys.stderr)
        sys.exit(2)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), weight_decay=a.weight_decay)
    g = torch.Generator().manual_seed(1)

    def step():
        ids = torch.randint(0, a.vocab, (a.batch, a.seq_len), generator=g)
        idx = torch.randint(0, sigmas.numel(), (a.batch,), generator=g)
        sig = sigmas[idx]
        eps = torch.randn(a.batch, a.seq_len, a.dim, generator=g)
        x0 = net.embedding(ids)
        s = sig[:, None, None]
        x = x0 + s * eps
        f = net(x / torch.sqrt(1 + s * s), idx.float())
        loss = ((f - x0) ** 2).mean()
        x1 = x0 + sigma_min * eps
        if a.w_rounding > 0:
            loss = loss + a.w_rounding * F.cross_entropy(net.logits(x1).reshape(-1, a.vocab), ids.reshape(-1))
        if a.w_embedding > 0:
            t0 = int(torch.argmin(sigmas))
            d = net(x1 / math.sqrt(1 + sigma_min ** 2), torch.full((a.batch,), float(t0)))
            loss = loss + a.w_embedding * ((d - x0) ** 2).mean()
        if a.w_prior > 0:
            loss = loss + a.w_prior / (1 + sigma_max ** 2) * (x0 ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), a.grad_clip)
        opt.step()
        return float(loss)

    load = os.getloadavg()[0]
    for _ in range(a.warmup):
        step()
    times = []
    last = None
    for i in range(a.steps):
        t0 = time.perf_counter()
        last = step()
        times.append((time.perf_counter() - t0) * 1000)
        print(f"  pytorch {a.threads} thread(s): step {i + 1}/{a.steps} {times[-1]:.0f} ms", file=sys.stderr)
    med = sorted(times)[len(times) // 2] if len(times) % 2 else sum(sorted(times)[len(times) // 2 - 1: len(times) // 2 + 1]) / 2
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "params": params,
        "train": {"loadavg1_at_start": load, "warmup": a.warmup, "batch": a.batch, "seq_len": a.seq_len, "step_ms": times,
                  "median_ms": med, "tokens_per_s": a.batch * a.seq_len * 1000 / med, "last_loss": last},
    }))


if __name__ == "__main__":
    main()
