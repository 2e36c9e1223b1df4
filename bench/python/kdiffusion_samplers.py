#!/usr/bin/env python3
"""k-diffusion's samplers on an exact Gaussian-mixture denoiser, for `npm run bench:samplers`.

bench/samplers.ts writes a job (JSON plus raw little-endian float32 arrays),
runs this script with the venv made by ensure-kdiffusion-venv.sh, and reads the
samples back; every metric is computed on the TypeScript side, with the same
code, projections and exact reference sample for both libraries.

    kdiffusion_samplers.py probe JOB.json OUT.json   steps per NFE budget for each sampler
    kdiffusion_samplers.py run   JOB.json OUT.json   run the sampler jobs, write samples

How k-diffusion is loaded: the PyPI wheel (k-diffusion 0.1.1.post1, installed
with --no-deps) has a package __init__ that imports every submodule, which
needs torchvision, clip, kornia, wandb, ... . We load only
k_diffusion/utils.py and k_diffusion/sampling.py by file path under a bare
`k_diffusion` package object, unmodified; utils.py's one torchvision import
(image helpers the samplers never call) is satisfied by a stub when
torchvision is not importable.

Precision: the benchmark runs use float64 throughout (denoiser, x, sigmas,
every sampler step) on the CPU, one torch thread. Inputs that come from
difflab (initial noise, replayed noise) are float32 values, converted exactly.
A job may ask for float32 runs: the bench uses them on the parity inputs to
measure how far float32 arithmetic alone moves k-diffusion's own result.

Denoiser: a mixture sum_k w_k N(mu_k, Sigma_k) blurred by N(0, sigma^2 I) has
the exact posterior mean
    D(x; sigma) = sum_k r_k(x) (mu_k + Sigma_k (Sigma_k + sigma^2 I)^-1 (x - mu_k)),
    r_k(x) = softmax_k(log w_k + log N(x; mu_k, Sigma_k + sigma^2 I)),
computed in the eigenbasis of each Sigma_k (isotropic components skip the
rotation; in float64 they use ||x - mu_k||^2 = ||x||^2 - 2 x.mu_k + ||mu_k||^2
and never form a [B, K, d] tensor).

Noise: for samplers marked `replay`, every torch.randn_like call inside
k_diffusion.sampling and every noise_sampler call returns the next array of
the noise sequence difflab drew (in order), so the two libraries see identical
randomness. Other stochastic runs use torch's generator seeded with the job's
seed: k-diffusion's default noise (torch.randn_like; a torchsde Brownian tree
for dpmpp_sde / dpmpp_2m_sde / dpmpp_3m_sde), or, with noise='iid', a fresh
torch.randn_like per noise_sampler call for those three as well.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import pathlib
import sys
import time
import types

import numpy as np
import torch

DTYPE = torch.float64


# --------------------------------------------------------------------------- loading

def load_kdiffusion_sampling() -> types.ModuleType:
    spec = importlib.util.find_spec('k_diffusion')
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError('k_diffusion is not installed (run bench/python/ensure-kdiffusion-venv.sh)')
    pkg_dir = pathlib.Path(list(spec.submodule_search_locations)[0])
    try:
        import torchvision.transforms.functional  # noqa: F401
    except Exception:  # not installed, or a build that does not match torch
        def missing(name: str):
            def fail(*_a, **_k):
                raise RuntimeError(f'torchvision stub: {name} is not available in the k-diffusion bench venv')
            return fail
        tv = types.ModuleType('torchvision')
        tr = types.ModuleType('torchvision.transforms')
        fn = types.ModuleType('torchvision.transforms.functional')
        fn.__getattr__ = missing  # PEP 562: any attribute is a function that raises
        tv.transforms = tr
        tr.functional = fn
        sys.modules.update({'torchvision': tv, 'torchvision.transforms': tr, 'torchvision.transforms.functional': fn})
    pkg = types.ModuleType('k_diffusion')
    pkg.__path__ = [str(pkg_dir)]
    sys.modules['k_diffusion'] = pkg
    for name in ('utils', 'sampling'):
        sub = importlib.util.spec_from_file_location(f'k_diffusion.{name}', pkg_dir / f'{name}.py')
        mod = importlib.util.module_from_spec(sub)
        sys.modules[sub.name] = mod
        sub.loader.exec_module(mod)
        setattr(pkg, name, mod)
    return sys.modules['k_diffusion.sampling']


K = load_kdiffusion_sampling()

# k-diffusion samplers that take a sigma array. dpm_fast / dpm_adaptive take a
# sigma range instead (adaptive has no fixed NFE), so they are left out.
SAMPLERS = {
    'euler': K.sample_euler,
    'euler_ancestral': K.sample_euler_ancestral,
    'heun': K.sample_heun,
    'dpm_2': K.sample_dpm_2,
    'dpm_2_ancestral': K.sample_dpm_2_ancestral,
    'lms': K.sample_lms,
    'dpmpp_2s_ancestral': K.sample_dpmpp_2s_ancestral,
    'dpmpp_sde': K.sample_dpmpp_sde,
    'dpmpp_2m': K.sample_dpmpp_2m,
    'dpmpp_2m_sde': K.sample_dpmpp_2m_sde,
    'dpmpp_3m_sde': K.sample_dpmpp_3m_sde,
}
TAKES_NOISE_SAMPLER = {'euler_ancestral', 'dpm_2_ancestral', 'dpmpp_2s_ancestral', 'dpmpp_sde', 'dpmpp_2m_sde', 'dpmpp_3m_sde'}
# Samplers whose default noise sampler is a torchsde Brownian tree (about 1.5 s
# per query for a [1000, 784] batch here, so a job may ask for 'iid' instead).
BROWNIAN = {'dpmpp_sde', 'dpmpp_2m_sde', 'dpmpp_3m_sde'}


# --------------------------------------------------------------------------- denoiser

class Mixture:
    """Exact denoiser of a Gaussian mixture (see the module docstring)."""

    def __init__(self, spec: dict, dtype: torch.dtype = torch.float64):
        comps = spec['components']
        self.d = int(spec['dim'])
        self.dtype = dtype
        w = torch.tensor([c['weight'] for c in comps], dtype=torch.float64)
        self.log_w = torch.log(w / w.sum()).to(dtype)
        self.means = torch.tensor([c['mean'] for c in comps], dtype=torch.float64).to(dtype)  # [K, d]
        self.isotropic = all('std' in c for c in comps)
        if self.isotropic:
            self.var = torch.tensor([c['std'] ** 2 for c in comps], dtype=torch.float64).to(dtype)  # [K]
            self.mean_sq = (self.means.to(torch.float64) ** 2).sum(-1).to(dtype)  # [K]
            self.lam, self.rot = self.var[:, None].expand(-1, self.d), None
        else:
            covs = torch.tensor([c['cov'] if 'cov' in c else np.diag([c['std'] ** 2] * self.d).tolist() for c in comps], dtype=torch.float64)
            lam, rot = torch.linalg.eigh(covs)  # covs[k] = rot[k] diag(lam[k]) rot[k]^T
            self.lam, self.rot = lam.clamp_min(0).to(dtype), rot.to(dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(shape[0], -1).to(self.dtype)
        s2 = (sigma.to(self.dtype) ** 2)[:, None]  # [B, 1]
        if self.isotropic and self.dtype == torch.float64:
            # Isotropic components, without a [B, K, d] intermediate:
            # ||x - mu_k||^2 = ||x||^2 - 2 x.mu_k + ||mu_k||^2, and
            # sum_k r_k (mu_k + a_k (x - mu_k)) = x sum_k r_k a_k + sum_k r_k (1 - a_k) mu_k, a_k = v_k / (v_k + sigma^2).
            var = self.var[None] + s2  # [B, K]
            dist2 = ((x * x).sum(-1, keepdim=True) - 2 * x @ self.means.T + self.mean_sq[None]).clamp_min(0)
            logp = self.log_w[None] - 0.5 * (dist2 / var + self.d * var.log())
            resp = torch.softmax(logp, dim=-1)  # [B, K]
            a = self.var[None] / var
            x0 = x * (resp * a).sum(-1, keepdim=True) + (resp * (1 - a)) @ self.means
        else:
            # Direct form (full covariances, and float32 runs, where the expansion
            # above would lose digits): everything in each component's eigenbasis.
            diff = x[:, None, :] - self.means[None]  # [B, K, d]
            y = diff if self.rot is None else torch.einsum('bkd,kde->bke', diff, self.rot)
            var = self.lam[None] + s2[:, :, None]  # [B, K, d]
            logp = self.log_w[None] - 0.5 * (y * y / var + var.log()).sum(-1)
            resp = torch.softmax(logp, dim=-1)
            shrunk = y * (self.lam[None] / var)
            back = shrunk if self.rot is None else torch.einsum('bke,kde->bkd', shrunk, self.rot)
            x0 = (resp[:, :, None] * (self.means[None] + back)).sum(1)
        return x0.reshape(shape)


class Counted:
    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, x, sigma, **_kw):
        self.calls += 1
        return self.fn(x, sigma)


class Replay:
    """Hands out difflab's recorded noise arrays in order."""

    def __init__(self, arrays: np.ndarray):
        self.arrays = arrays  # [draws, numel] float32
        self.used = 0

    def draw(self, like: torch.Tensor) -> torch.Tensor:
        if self.used >= self.arrays.shape[0]:
            raise RuntimeError(f'noise replay exhausted after {self.used} draws (k-diffusion asked for more than difflab drew)')
        a = self.arrays[self.used]
        if a.size != like.numel():
            raise RuntimeError(f'noise replay: draw {self.used} has {a.size} values, k-diffusion wants {like.numel()}')
        self.used += 1
        return torch.from_numpy(a.astype(np.float64)).to(like.dtype).reshape(like.shape)


def run_sampler(name: str, model, x: torch.Tensor, sigmas: torch.Tensor, replay: Replay | None, noise: str = 'default'):
    """noise: 'default' (k-diffusion's own noise source: torch.randn_like, or a
    Brownian tree for BROWNIAN samplers) or 'iid' (a fresh torch.randn_like per
    noise_sampler call for BROWNIAN samplers too). Ignored when replaying."""
    fn = SAMPLERS[name]
    kwargs = {'disable': True}
    if replay is None:
        if noise == 'iid' and name in BROWNIAN:
            kwargs['noise_sampler'] = K.default_noise_sampler(x)
        return fn(model, x, sigmas, **kwargs)
    if name in TAKES_NOISE_SAMPLER:
        kwargs['noise_sampler'] = lambda _s, _sn: replay.draw(x)
    original = torch.randn_like
    torch.randn_like = lambda like, *a, **k: replay.draw(like)  # s_churn / default_noise_sampler paths
    try:
        return fn(model, x, sigmas, **kwargs)
    finally:
        torch.randn_like = original


# --------------------------------------------------------------------------- modes

def nfe_for(name: str, steps: int) -> int:
    """Counts denoiser calls of one run with `steps` Karras steps (batch of one, 2-D)."""
    torch.manual_seed(0)
    model = Counted(lambda x, s: 0.5 * x)
    ramp = torch.linspace(0, 1, steps, dtype=DTYPE)
    sigmas = K.append_zero((80.0 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7)
    run_sampler(name, model, torch.randn(1, 2, dtype=DTYPE) * 80.0, sigmas, None)
    return model.calls


def probe(job: dict) -> dict:
    """Largest step count whose counted NFE fits each budget (NFE is monotone in steps)."""
    out: dict = {}
    for name in job['samplers']:
        cache: dict[int, int] = {}

        def nfe(n: int) -> int:
            if n not in cache:
                cache[n] = nfe_for(name, n)
            return cache[n]

        out[name] = {}
        for budget in job['budgets']:
            lo, hi = 0, int(budget)  # nfe(lo) <= budget invariant (lo = 0 means none fits)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if nfe(mid) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            out[name][str(budget)] = {'steps': lo, 'nfe': nfe(lo) if lo > 0 else None}
    return {'steps': out}


def read_f32(path: pathlib.Path, count: int) -> np.ndarray:
    a = np.fromfile(path, dtype='<f4')
    if a.size != count:
        raise RuntimeError(f'{path.name}: expected {count} float32 values, found {a.size}')
    return a


def run(job: dict, base: pathlib.Path) -> dict:
    threads = int(job.get('threads', 1))  # one thread: this machine's 2 cores are shared
    torch.set_num_threads(threads)
    specs = {d['name']: d['mixture'] for d in job['datasets']}
    mixtures: dict[tuple[str, str], Mixture] = {}
    inits: dict[str, np.ndarray] = {}
    results = []
    for r in job['runs']:
        rid = r['id']
        try:
            dtype_name = r.get('dtype', 'float64')
            dtype = {'float64': torch.float64, 'float32': torch.float32}[dtype_name]
            if (r['dataset'], dtype_name) not in mixtures:
                mixtures[(r['dataset'], dtype_name)] = Mixture(specs[r['dataset']], dtype)
            mix = mixtures[(r['dataset'], dtype_name)]
            n, d = int(r['n']), mix.d
            key = r['x_file']
            if key not in inits:
                inits[key] = read_f32(base / key, int(r['x_rows']) * d).reshape(-1, d)
            x = torch.from_numpy(inits[key][:n].astype(np.float64)).to(dtype)  # already scaled by sigmas[0]
            sigmas = torch.tensor(r['sigmas'], dtype=torch.float64).to(dtype)
            replay = None
            if r.get('noise_file'):
                draws = int(r['noise_draws'])
                replay = Replay(read_f32(base / r['noise_file'], draws * n * d).reshape(draws, n * d))
            torch.manual_seed(int(r.get('seed', 0)))
            model = Counted(mix)
            t0 = time.perf_counter()
            out = run_sampler(r['sampler'], model, x, sigmas, replay, r.get('noise', 'default'))
            wall = time.perf_counter() - t0
            out_file = f'out-{rid}.f64'
            out.detach().cpu().numpy().astype('<f8').tofile(base / out_file)
            results.append({
                'id': rid, 'dtype': dtype_name, 'nfe': model.calls, 'steps': len(r['sigmas']) - 1, 'wall_s': wall, 'out_file': out_file,
                'noise_draws_given': None if replay is None else int(replay.arrays.shape[0]),
                'noise_draws_used': None if replay is None else replay.used,
                'finite': bool(torch.isfinite(out).all()),
            })
        except Exception as err:  # one failing run must not hide the others
            results.append({'id': rid, 'error': f'{type(err).__name__}: {err}'})
        if os.environ.get('KDIFF_VERBOSE'):
            print(f'kdiffusion: {rid} done', file=sys.stderr, flush=True)
    return {'results': results}


def info() -> dict:
    return {
        'torch': torch.__version__,
        'k_diffusion': importlib.metadata.version('k-diffusion'),
        'python': sys.version.split()[0],
        'dtype': 'float64 (benchmark runs); float32 only for the precision-floor runs',
        'torch_threads': torch.get_num_threads(),
        'loaded_from': str(pathlib.Path(K.__file__).parent),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ('probe', 'run'):
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    mode, job_path, out_path = argv[1], pathlib.Path(argv[2]), pathlib.Path(argv[3])
    job = json.loads(job_path.read_text())
    result = probe(job) if mode == 'probe' else run(job, job_path.parent)
    result['info'] = info()
    out_path.write_text(json.dumps(result, allow_nan=True))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
