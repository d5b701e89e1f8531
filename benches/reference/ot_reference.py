#!/usr/bin/env python3
"""Reference timings for `cargo xtask bench ot`.

Run by the bench runner (not by hand), which writes the seeded inputs as .npy
files and a manifest, then reads the JSON this script writes:

    .venv/bin/python benches/reference/ot_reference.py --manifest DIR/manifest.json --out DIR/results.json

References, each timed with warm-up runs and reported as the median:
  ipot          PyTorch batched IPOT with UNITER's algorithm and defaults (written
                for this bench: sigma = 1/n_x, T = 1, A = exp(-C/beta) masked, per
                outer step Q = A*T, k inner scaling sweeps, T = delta Q sigma), plus
                the UNITER distance trace(C T).
  emd2          POT ot.emd2 in a Python loop over the batch (uniform weights).
  sinkhorn2     POT ot.sinkhorn2 (method="sinkhorn") in a loop, fixed iterations.
  sinkhorn2_log POT ot.sinkhorn2 (method="sinkhorn_log") in a loop, fixed iterations.
  cost          PyTorch cosine cost 1 - <x/max(|x|,1e-5), y/max(|y|,1e-5)>.
  wra           cost + IPOT + trace, i.e. UNITER's optimal_transport_dist.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    return p.parse_args()


def main():
    args = parse_args()
    with open(args.manifest) as f:
        manifest = json.load(f)
    threads = int(manifest["threads"])
    # Before numpy / torch load their thread pools.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)

    import numpy as np
    import ot
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)

    def cpu_snapshot():
        """(busy jiffies of all CPUs, total jiffies, this process's own jiffies incl. children)."""
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
            t = os.times()
            own = (t.user + t.system + t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK")
            return busy, busy + v[3] + v[4], own
        except (OSError, ValueError, IndexError):
            return None

    def others_share(a, b):
        """Fraction of the machine's CPU time used by other processes between two snapshots."""
        if a is None or b is None or b[1] <= a[1]:
            return None
        return max(0.0, ((b[0] - a[0]) - (b[2] - a[2])) / (b[1] - a[1]))

    def timed(fn, reps, warmup):
        for _ in range(warmup):
            out = fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), out

    @torch.no_grad()
    def ipot_plan(C, x_pad, y_pad, beta, iterations, k):
        """UNITER's batched IPOT. C: [B, M, N]; pads [B, M], [B, N] (True = pad).
        Works in the transposed [B, N, M] layout like UNITER; returns the plan [B, N, M]."""
        bsz, m, n = C.shape
        x_len = (m - x_pad.sum(dim=1)).to(C.dtype)  # [B]
        y_len = (n - y_pad.sum(dim=1)).to(C.dtype)
        joint = (x_pad.unsqueeze(2) | y_pad.unsqueeze(1)).transpose(1, 2)  # [B, N, M]
        sigma = (torch.ones(bsz, m, dtype=C.dtype) / x_len.unsqueeze(1)).masked_fill(x_pad, 0)
        plan = torch.ones(bsz, n, m, dtype=C.dtype).masked_fill(joint, 0)
        kernel = torch.exp(C.transpose(1, 2) / -beta).masked_fill(joint, 0)
        nx = x_len.view(bsz, 1, 1)
        ny = y_len.view(bsz, 1, 1)
        # Padded entries get a huge denominator, i.e. a ~zero scaling.
        x_big = (x_pad.to(C.dtype) * 1e4).unsqueeze(1)  # [B, 1, M]
        y_big = (y_pad.to(C.dtype) * 1e4).unsqueeze(1)  # [B, 1, N]
        sigma = sigma.view(bsz, m, 1)
        for _ in range(iterations):
            q = kernel * plan  # [B, N, M]
            for _ in range(k):
                delta = 1.0 / (ny * q.matmul(sigma).view(bsz, 1, n) + y_big)  # [B, 1, N]
                sigma = (1.0 / (nx * delta.matmul(q) + x_big)).view(bsz, m, 1)  # [B, M, 1]
            plan = delta.view(bsz, n, 1) * q * sigma.view(bsz, 1, m)
        return plan.masked_fill(joint, 0)

    def trace_distance(C, plan_nm):
        # trace(C T) per example with C: [B, M, N], T: [B, N, M].
        return torch.diagonal(C.matmul(plan_nm), dim1=1, dim2=2).sum(-1)

    def cosine_cost(x, y, eps=1e-5):
        xn = F.normalize(x, p=2, dim=-1, eps=eps)
        yn = F.normalize(y, p=2, dim=-1, eps=eps)
        return 1.0 - xn.matmul(yn.transpose(1, 2))

    results = {
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pot": ot.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "cases": {},
    }
    for case in manifest["cases"]:
        name = case["name"]
        reps, warmup = int(case["reps"]), int(case["warmup"])
        C32 = np.load(os.path.join(case["dir"], "cost.npy"))  # [B, M, N] float32
        bsz, m, n = C32.shape
        Ct = torch.from_numpy(C32)
        x_pad = torch.zeros(bsz, m, dtype=torch.bool)
        y_pad = torch.zeros(bsz, n, dtype=torch.bool)
        ip = case["ipot"]
        out = {}
        snap0 = cpu_snapshot()

        def run_ipot():
            plan = ipot_plan(Ct, x_pad, y_pad, ip["beta"], ip["iterations"], ip["k"])
            return trace_distance(Ct, plan)

        ms, d = timed(run_ipot, reps, warmup)
        out["ipot"] = {"ms": ms, "distances": d.tolist()}

        C64 = [np.ascontiguousarray(C32[b], dtype=np.float64) for b in range(bsz)]
        a = np.full(m, 1.0 / m)
        bw = np.full(n, 1.0 / n)

        def run_emd2():
            return [float(ot.emd2(a, bw, c)) for c in C64]

        ms, d = timed(run_emd2, reps, warmup)
        out["emd2"] = {"ms": ms, "distances": d}

        sk = case["sinkhorn"]
        for key, method in (("sinkhorn2", "sinkhorn"), ("sinkhorn2_log", "sinkhorn_log")):
            def run_sk(method=method):
                return [
                    float(ot.sinkhorn2(a, bw, c, sk["reg"], method=method, numItermax=sk["iterations"],
                                       stopThr=0.0, warn=False))
                    for c in C64
                ]

            ms, d = timed(run_sk, reps, warmup)
            out[key] = {"ms": ms, "distances": d}

        if case.get("embeddings"):
            xt = torch.from_numpy(np.load(os.path.join(case["dir"], "x.npy")))
            yt = torch.from_numpy(np.load(os.path.join(case["dir"], "y.npy")))
            with torch.no_grad():
                ms, c = timed(lambda: cosine_cost(xt, yt), reps, warmup)
            out["cost"] = {"ms": ms, "max_abs_diff_vs_input": float((c - Ct).abs().max())}

            def run_wra():
                # UNITER's optimal_transport_dist: cost with autograd, plan without.
                cost = cosine_cost(xt, yt)
                plan = ipot_plan(cost.detach(), x_pad, y_pad, ip["beta"], ip["iterations"], ip["k"])
                return trace_distance(cost, plan.detach())

            ms, d = timed(run_wra, reps, warmup)
            out["wra"] = {"ms": ms, "distances": d.detach().tolist()}
        share = others_share(snap0, cpu_snapshot())
        print(f"  reference {name}: " + ", ".join(f"{k} {v['ms']:.2f} ms" for k, v in out.items()), file=sys.stderr)
        out["others_cpu_share"] = share
        results["cases"][name] = out

    with open(args.out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
