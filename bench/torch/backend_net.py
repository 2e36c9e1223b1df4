"""The benchmark network of `npm run bench:backend`, in PyTorch.

Same network as bench/backend.ts: 3x3 convs (1->64, three 64->64, 64->1),
SiLU between them, MSE against a fixed target, Adam(lr=1e-3), batch 32 of
28x28x1. Prints one JSON object: per-step times of the timed steps (warm-up
excluded) and what the run actually used (threads, torch build).

Usage: python backend_net.py --threads N [--warmup W] [--steps S] [--device cuda]
  (the common flags and the JSON scaffolding are in runner.py)
"""
import argparse

import runner


def main() -> None:
    ap = argparse.ArgumentParser()
    runner.add_common_args(ap)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--hidden-layers", type=int, default=3)
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format (tfjs's layout)")
    a = ap.parse_args()

    torch, nn, F, dev = runner.setup(a)
    c = a.channels
    layers = [nn.Conv2d(1, c, 3, padding=1), nn.SiLU()]
    for _ in range(a.hidden_layers):
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.SiLU()]
    layers += [nn.Conv2d(c, 1, 3, padding=1)]
    net = nn.Sequential(*layers)
    params = runner.check_params(torch, net, a)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(dev).to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(a.batch, 1, a.size, a.size).to(dev).contiguous(memory_format=fmt)
    y = torch.randn(a.batch, 1, a.size, a.size).to(dev).contiguous(memory_format=fmt)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # .item() synchronizes, so the step is complete

    out = runner.info(torch, a, params, channels_last=a.channels_last)
    out.update(runner.time_steps(step, a, a.batch, "images"))
    runner.emit(out)


if __name__ == "__main__":
    main()
