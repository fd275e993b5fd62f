#!/usr/bin/python3
"""Training-throughput peer for `glam bench train`: the same GLaM model in PyTorch (CPU, float32).

The model follows docs/model.md (and tools/torch_glam.py, the float64 reference), but is
written for speed rather than for reading the rules off the code:
  - float32 throughout, batched matrix products;
  - the MoE layer routes with vectorised top-2 + GShard capacity (cumulative sums over a
    one-hot of the choices), then runs one dense product per expert on the tokens gathered
    for it (index_select -> matmul -> index_add_), so compute follows the activated parameters.
The optimizer is Adafactor as docs/model.md's training recipe states it, tools/torch_glam.py's
(written by hand there because Debian's torch 1.13 has none built in).

A timed step is what glam's trainer does: forward, backward, the global gradient norm (a step
with a non-finite one is skipped, as docs/model.md's recipe asks), Adafactor. One run prints a single
JSON object: per-step seconds after warm-up, the median tokens/s and its spread, the forward /
backward / gradient check / optimizer split and the parameter count (the driver checks
that count against `glam info`, so both sides train the same model).

Usage (Debian's interpreter, which has torch; unset the OpenBLAS tuning variables):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/train_torch.py \
        --config cfg.json --batch 8 --seq 128 --steps 10 --warmup 3 --threads 1

Only the standard library and torch are used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time


def _pin_threads(argv: list[str]) -> None:
    """Give every thread pool torch uses the requested thread count, before torch is imported.

    Debian's torch calls OpenBLAS (libblas.so.3) for matrix products; OpenBLAS keeps its own
    pthread pool, sized from OPENBLAS_NUM_THREADS when the library loads (default: every core),
    which torch.set_num_threads does not touch. Unpinned, a "1 thread" run multiplies matrices
    on all cores. With T > 1, torch's OpenMP workers spin after each parallel region and fight
    OpenBLAS's threads for the same cores; OMP_WAIT_POLICY=PASSIVE (unless set by the caller)
    makes them sleep instead, which measured 1.5-3x faster on a 2-core machine.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=1)
    known, _ = pre.parse_known_args(argv)
    n = str(max(1, known.threads))
    os.environ["OPENBLAS_NUM_THREADS"] = n
    os.environ["OMP_NUM_THREADS"] = n
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_pin_threads(sys.argv[1:])

import torch  # noqa: E402  (after the thread pools are pinned)
import torch.nn.functional as F  # noqa: E402

# The one PyTorch oracle: configuration defaults, parameter names and shapes, the bucket function,
# RMSNorm, Adafactor and GLaM's schedule come from there; this file only adds a model fast enough to
# time. (torch_glam computes in float64 by default; the peer trains in float32.)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_glam  # noqa: E402
from torch_glam import Adafactor, bucket_table, glam_lr, is_moe_layer, param_specs, rms_norm  # noqa: E402

torch.set_default_dtype(torch.float32)


def load_config(path: str) -> dict:
    """Read a config JSON (a preset dumped by the driver, or a checkpoint's config.json)."""
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    cfg = torch_glam.full_config({k: v for k, v in raw.items() if k not in ("format", "name")})
    if cfg["n_experts"] > 0 and cfg["top_k"] != 2:
        raise SystemExit("train_torch.py: only top_k = 2 is implemented")
    return cfg


def init_params(cfg: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every parameter (names and shapes from the oracle), float32, requires_grad, with the
    distributions of docs/model.md "Initialisation" (the values differ from ours; for timing only
    the distributions matter): projections N(0, 1/fan_in), embedding N(0, 1), router N(0, 1/d_model),
    norm scales 1, rel_bias 0."""
    P: dict[str, torch.Tensor] = {}
    for name, shape in param_specs(cfg):
        if name.endswith(".scale"):
            t = torch.ones(shape)
        elif name.endswith(".rel_bias"):
            t = torch.zeros(shape)
        elif name == "embed.weight":
            t = torch.randn(shape, generator=gen)
        elif name.endswith(".router"):
            t = torch.randn(shape, generator=gen) * cfg["d_model"] ** -0.5
        else:
            t = torch.randn(shape, generator=gen) * shape[-2] ** -0.5
        P[name] = t.requires_grad_(True)
    return P


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


class Glam:
    """Forward pass of the GLaM stack; autograd provides the backward pass."""

    def __init__(self, cfg: dict, P: dict[str, torch.Tensor], seq_len: int):
        self.cfg = cfg
        self.P = P
        T = seq_len
        # Bucket index of every (i, j) pair (computed once; masked pairs get bucket 0) and the
        # additive causal mask (-inf above the diagonal).
        table = bucket_table(T, cfg)
        i = torch.arange(T).unsqueeze(1)
        j = torch.arange(T).unsqueeze(0)
        dist = (i - j).clamp(min=0)
        self.bucket_idx = torch.tensor(table)[dist]  # [T, T]
        self.mask = torch.zeros(T, T).masked_fill(j > i, float("-inf"))

    def attention(self, a: torch.Tensor, pre: str) -> torch.Tensor:
        """Causal multi-head attention with a learned per-head relative-position bias."""
        cfg, P = self.cfg, self.P
        B, T, _ = a.shape
        H, Dh = cfg["n_heads"], cfg["d_head"]

        def heads(x: torch.Tensor) -> torch.Tensor:  # [B,T,H*Dh] -> [B,H,T,Dh]
            return x.view(B, T, H, Dh).transpose(1, 2)

        q = heads(a @ P[f"{pre}.wq"])
        k = heads(a @ P[f"{pre}.wk"])
        v = heads(a @ P[f"{pre}.wv"])
        # bias[h, i, j] = rel_bias[bucket(i - j), h], plus the causal mask; one [H,T,T] tensor.
        bias = P[f"{pre}.rel_bias"][self.bucket_idx].permute(2, 0, 1) + self.mask
        scores = torch.baddbmm(
            bias.unsqueeze(0).expand(B, H, T, T).reshape(B * H, T, T),
            q.reshape(B * H, T, Dh),
            k.reshape(B * H, T, Dh).transpose(1, 2),
            alpha=1.0 / math.sqrt(Dh),
        )
        probs = torch.softmax(scores, dim=-1)
        o = torch.bmm(probs, v.reshape(B * H, T, Dh)).view(B, H, T, Dh)
        return o.transpose(1, 2).reshape(B, T, H * Dh) @ P[f"{pre}.wo"]

    def dense_ffn(self, f: torch.Tensor, pre: str) -> torch.Tensor:
        """Gated-GELU feed-forward: (gelu(f wi_0) * (f wi_1)) wo, tanh GELU."""
        P = self.P
        return (F.gelu(f @ P[f"{pre}.wi_0"], approximate="tanh") * (f @ P[f"{pre}.wi_1"])) @ P[f"{pre}.wo"]

    def moe(self, f: torch.Tensor, pre: str) -> tuple[torch.Tensor, torch.Tensor]:
        """GShard top-2 MoE over f [N, D]; returns (output [N, D], aux loss)."""
        cfg, P = self.cfg, self.P
        N, D = f.shape
        E, G = cfg["n_experts"], cfg["num_groups"]
        S = N // G
        cf = cfg["capacity_factor"]
        capacity = math.ceil(cf * S / E) if cf > 0 else S * 2  # <= 0: no limit

        p = torch.softmax(f @ P[f"{pre}.router"], dim=-1)  # [N, E], float32
        top_p, top_e = torch.topk(p, 2, dim=-1)  # first and second choice
        denom = top_p.sum(dim=-1, keepdim=True)
        gates = top_p / denom  # [N, 2], differentiable through p

        # Capacity, per group: first choices take slots in token order, then second choices.
        with torch.no_grad():
            e1 = top_e[:, 0].view(G, S)
            e2 = top_e[:, 1].view(G, S)
            m1 = F.one_hot(e1, E)  # [G, S, E]
            m2 = F.one_hot(e2, E)
            pos1 = (m1.cumsum(dim=1) - 1).gather(2, e1.unsqueeze(2)).squeeze(2)  # slot of each choice
            count1 = m1.sum(dim=1, keepdim=True)  # [G, 1, E] slots first choices use
            pos2 = (m2.cumsum(dim=1) - 1 + count1).gather(2, e2.unsqueeze(2)).squeeze(2)
            keep = torch.stack([pos1 < capacity, pos2 < capacity], dim=-1).view(N, 2)
            frac = m1.sum(dim=1).to(p.dtype) / S  # [G, E] fraction of first choices per expert

        # aux = E * sum_e mean_t p[e] * frac[e], per group, averaged over groups.
        aux = (E * (p.view(G, S, E).mean(dim=1) * frac).sum(dim=-1)).mean()

        # Kept assignments, grouped by expert: one sort, then contiguous slices.
        token = torch.arange(N).unsqueeze(1).expand(N, 2).reshape(-1)
        expert = top_e.reshape(-1)
        kept = keep.reshape(-1).nonzero().squeeze(1)
        expert_k = expert[kept]
        order = torch.argsort(expert_k, stable=True)
        sel = kept[order]  # assignment indices (into the 2N list), sorted by expert
        tok = token[sel]
        gate = gates.reshape(-1)[sel]
        counts = torch.bincount(expert_k, minlength=E).tolist()

        # One dense product per expert on its gathered tokens; outputs are concatenated in the
        # sorted assignment order, weighted by their gates and scattered back in one index_add.
        # unbind() once per layer: its backward stacks the E expert gradients into one tensor,
        # where indexing wi[e] per expert would add E full-size [E, D, F] gradients.
        gated = cfg["expert_gated"]
        wi = P[f"{pre}.wi_0" if gated else f"{pre}.wi"].unbind(0)
        wi1 = P[f"{pre}.wi_1"].unbind(0) if gated else None
        wo = P[f"{pre}.wo"].unbind(0)
        ys = []
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            x = f.index_select(0, tok[start:start + c])
            hidden = F.gelu(x @ wi[e], approximate="tanh")
            if wi1 is not None:
                hidden = hidden * (x @ wi1[e])
            ys.append(hidden @ wo[e])
            start += c
        if not ys:
            return torch.zeros_like(f), aux
        y = torch.cat(ys) * gate.unsqueeze(1)
        out = torch.zeros_like(f).index_add(0, tok, y)
        return out, aux

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Total loss: mean CE + z_loss_weight * mean(lse^2) + aux_loss_weight * sum(aux)."""
        cfg, P = self.cfg, self.P
        B, T = inputs.shape
        D, eps = cfg["d_model"], cfg["norm_eps"]
        h = F.embedding(inputs, P["embed.weight"])  # no scaling, no positions
        aux_total = h.new_zeros(())
        for l in range(cfg["n_layers"]):
            pre = f"layers.{l}"
            a = rms_norm(h, P[f"{pre}.attn_norm.scale"], eps)
            h = h + self.attention(a, f"{pre}.attn")
            f = rms_norm(h, P[f"{pre}.ffn_norm.scale"], eps)
            if is_moe_layer(cfg, l):
                y, aux = self.moe(f.reshape(B * T, D), f"{pre}.moe")
                h = h + y.view(B, T, D)
                aux_total = aux_total + aux
            else:
                h = h + self.dense_ffn(f, f"{pre}.ffn")
        x = rms_norm(h, P["final_norm.scale"], eps).reshape(B * T, D) * (D ** -0.5)
        logits = x @ P["embed.weight"].t()  # tied output embedding, [N, V]
        lse = torch.logsumexp(logits, dim=-1)
        ce = lse - logits.gather(1, targets.reshape(-1, 1)).squeeze(1)
        return ce.mean() + cfg["z_loss_weight"] * (lse * lse).mean() + cfg["aux_loss_weight"] * aux_total


# --------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="config JSON (all keys of docs/model.md)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # can only be set once, before any parallel work
    cfg = load_config(args.config)
    if args.seq > cfg["max_seq_len"]:
        raise SystemExit(f"--seq {args.seq} exceeds max_seq_len {cfg['max_seq_len']}")
    N = args.batch * args.seq
    if cfg["n_experts"] > 0 and N % cfg["num_groups"] != 0:
        raise SystemExit(f"num_groups {cfg['num_groups']} must divide batch*seq = {N}")

    gen = torch.Generator().manual_seed(args.seed)
    P = init_params(cfg, gen)
    model = Glam(cfg, P, args.seq)
    params = list(P.values())
    opt = Adafactor(param_scale=True)  # the default recipe's relative steps, as glam bench train runs
    n_params = sum(p.numel() for p in params)

    # A few synthetic batches of uniform random tokens, cycled (targets: the next token).
    batches = []
    for _ in range(4):
        toks = torch.randint(0, cfg["vocab_size"], (args.batch, args.seq + 1), generator=gen)
        batches.append((toks[:, :-1].contiguous(), toks[:, 1:].contiguous()))

    step_s: list[float] = []
    fwd_s: list[float] = []
    bwd_s: list[float] = []
    check_s: list[float] = []
    opt_s: list[float] = []
    losses: list[float] = []
    for i in range(args.warmup + args.steps):
        inputs, targets = batches[i % len(batches)]
        t0 = time.perf_counter()
        for p in params:
            p.grad = None
        loss = model.loss(inputs, targets)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        # As the trainer does (docs/model.md: skip the update of a step whose gradients hold a NaN or Inf):
        # the global gradient norm, which is finite exactly when every gradient is.
        with torch.no_grad():
            grad_norm = torch.stack([p.grad.norm() for p in params]).norm()
            finite = bool(torch.isfinite(grad_norm))
        t2b = time.perf_counter()
        if finite:
            opt.step(P, {n: p.grad for n, p in P.items()}, glam_lr(opt.t + 1))
        t3 = time.perf_counter()
        losses.append(float(loss))
        if i >= args.warmup:
            step_s.append(t3 - t0)
            fwd_s.append(t1 - t0)
            bwd_s.append(t2 - t1)
            check_s.append(t2b - t2)
            opt_s.append(t3 - t2b)

    tps = sorted(N / s for s in step_s)
    out = {
        "impl": "torch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "params": n_params,
        "batch": args.batch,
        "seq": args.seq,
        "tokens_per_step": N,
        "steps": args.steps,
        "warmup": args.warmup,
        "step_s": step_s,
        "tokens_per_s_median": statistics.median(tps),
        "tokens_per_s_min": tps[0],
        "tokens_per_s_max": tps[-1],
        "forward_s_median": statistics.median(fwd_s),
        "backward_s_median": statistics.median(bwd_s),
        "gradcheck_s_median": statistics.median(check_s),
        "optimizer_s_median": statistics.median(opt_s),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
