"""Microbenchmarks behind docs/performance.md: the cost of each hot-loop change, old vs new.

    python benchmarks/micro_ops.py [--threads 1] [--reps 5]

Each case times a forward + backward (or an optimizer step) many times and prints the best of
``--reps`` repetitions in CPU milliseconds per call (``time.process_time``, all threads), with
the load average, so that runs on a shared machine can be judged. Shapes are the UCF preset's
(unseen classifier: 112 positives + 112 negatives = 224 rows; generator: batches of 64).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from avood_core.train.precision import adam, dropout, keep_mask  # noqa: E402


def best_ms(fn, reps: int, inner: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        for _ in range(inner):
            fn()
        times.append((time.process_time() - t) / inner * 1000)
    return min(times)


def fwd_bwd(fn, *inputs):
    def run():
        out = fn(*inputs)
        out.backward(torch.ones_like(out))
        for x in inputs:
            x.grad = None
    return run


def case_adam(reps):
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    net = CrossAttentionClassifier().make_net(audio_dim=512, video_dim=512, text_dim=300)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    n = sum(p.numel() for p in net.parameters())
    rows = []
    for label, opt in (("Adam, for-loop (torch default on CPU)", torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-5)),
                       ("Adam, foreach", torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-5, foreach=True)),
                       ("Adam, fused (avood_core.train.precision.adam)", adam(net.parameters(), lr=1e-4, weight_decay=1e-5))):
        rows.append((f"optimizer step, unseen net ({n / 1e6:.2f} M params): {label}", best_ms(opt.step, reps, 50)))
    return rows


def case_dropout(reps):
    rows = []
    x = torch.randn(224, 512, requires_grad=True)
    p = 0.5
    variants = {
        "nn.Dropout (bernoulli_)": lambda t: F.dropout(t, p, True),
        "rand_like mask, x * bool * scale (before)": lambda t: t * (torch.rand_like(t) >= p) * (1 / (1 - p)),
        "16-bit lanes, x * bool * scale": lambda t: t * keep_mask(t.shape, p) * (1 / (1 - p)),
        "16-bit lanes, x * float multiplier (avood_core.train.precision.dropout)": lambda t: dropout(t, p, True),
    }
    for label, f in variants.items():
        rows.append((f"dropout fwd+bwd, 224x512 fp32: {label}", best_ms(fwd_bwd(f, x), reps, 100)))
    return rows


def case_attention(reps):
    from avood_plugins.unseen._avca_net import attention

    rows = []
    q, k, v = (torch.randn(224, 2, 3, 100, requires_grad=True) for _ in range(3))

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    rows.append(("2-token attention fwd+bwd, (224, 2, 3x100): scaled_dot_product_attention (before)",
                 best_ms(fwd_bwd(sdpa, q, k, v), reps, 100)))
    rows.append(("2-token attention fwd+bwd, (224, 2, 3x100): elementwise (_avca_net.attention)",
                 best_ms(fwd_bwd(attention, q, k, v), reps, 100)))
    return rows


def case_text_projection(reps):
    from avood_plugins.unseen.cross_attention import CrossAttentionClassifier

    net = CrossAttentionClassifier().make_net(audio_dim=512, video_dim=512, text_dim=300)
    net.train()
    table = torch.randn(42, 300)
    rows_idx = torch.randint(0, 42, (224,))
    full = table[rows_idx]

    def per_row():
        out = net.W_proj(full)
        out.sum().backward()

    def per_class():
        out = net.W_proj[1:](net.W_proj[0](table)[rows_idx])
        out.sum().backward()

    return [("W_proj fwd+bwd, 224 rows of 42 classes: per row (before)", best_ms(per_row, reps, 50)),
            ("W_proj fwd+bwd, 224 rows of 42 classes: first Linear per class, gathered", best_ms(per_class, reps, 50))]


def case_critic(reps):
    from avood_plugins.generators.wgan_gp import WGANGP

    net = WGANGP().make_net(x_dim=1024, t_dim=300)
    x, fake, c = torch.randn(64, 1024), torch.randn(64, 1024), torch.randn(64, 300)

    def separate():
        (net.critic(fake, c).mean() - net.critic(x, c).mean()).backward()

    def batched():
        d = net.critic(torch.cat([x, fake]), torch.cat([c, c]))
        (d[64:].mean() - d[:64].mean()).backward()

    return [("critic real+fake fwd+bwd, 2 x 64 rows: two passes (before)", best_ms(separate, reps, 50)),
            ("critic real+fake fwd+bwd, 2 x 64 rows: one batched pass", best_ms(batched, reps, 50))]


def case_matmul(reps):
    rows = []
    for m, k, n in ((224, 512, 512), (64, 1324, 662), (32, 1024, 512)):
        for dtype in (torch.float32, torch.bfloat16):
            a, w = torch.randn(m, k).to(dtype), torch.randn(n, k).to(dtype)
            ms = best_ms(lambda: F.linear(a, w), reps, 100)
            rows.append((f"linear {m}x{k} @ {k}x{n} {str(dtype).removeprefix('torch.')}: {2 * m * k * n / ms / 1e6:.0f} GFLOP/s", ms))
    return rows


CASES = {"adam": case_adam, "dropout": case_dropout, "attention": case_attention, "text": case_text_projection,
         "critic": case_critic, "matmul": case_matmul}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()}")
    print("| case | CPU ms per call (best of reps) |")
    print("|---|---:|")
    for name in args.cases.split(","):
        for label, ms in CASES[name](args.reps):
            print(f"| {label} | {ms:.3f} |", flush=True)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
