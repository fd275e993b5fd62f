#!/usr/bin/python3
"""Independent PyTorch reference implementation of the glam-moe model (docs/model.md).

This file is deliberately written for clarity, not speed: the MoE layer routes
tokens with explicit per-token Python loops, exactly as the spec words it, so that
each rule (top-2 with lowest-index ties, normalised gates, per-group capacity with
GShard slot order, dropping) can be read off the code. A second, dense
"dispatch everything, mask the combine weights" formulation of the same MoE is
kept only as a cross-check.

Everything is computed in float64 so the values written to the parity fixtures
are precise; the TypeScript model computes in float32 and is compared to these
values with tolerances (see test/model/parity.test.ts).

Commands (run with the Debian interpreter, /usr/bin/python3, which has torch):

    /usr/bin/python3 tools/torch_glam.py make-fixtures test/fixtures/parity
    /usr/bin/python3 tools/torch_glam.py make-trajectory test/fixtures/trajectory
    /usr/bin/python3 tools/torch_glam.py check
    /usr/bin/python3 tools/torch_glam.py eval CHECKPOINT_DIR TOKENS_JSON [--capacity-factor X]

Only the standard library and torch are used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
from dataclasses import dataclass, field

import torch

torch.set_default_dtype(torch.float64)

FORMAT = "glam-moe/1"

# Defaults of the optional config keys (docs/model.md).
CONFIG_DEFAULTS = {
    "moe_layer_interval": 2,
    "top_k": 2,
    "expert_gated": False,
    "capacity_factor": 2.0,
    "eval_capacity_factor": 0.0,
    "second_expert_policy": "all",
    "num_groups": 1,
    "rel_buckets": 32,
    "rel_max_distance": 128,
    "norm_eps": 1e-6,
    "aux_loss_weight": 0.01,
    "z_loss_weight": 1e-4,
}

# Order of keys in a written config.json (the spec's order, then "format").
CONFIG_KEYS = [
    "vocab_size", "d_model", "n_layers", "n_heads", "d_head", "d_ff", "n_experts", "d_ff_expert",
    "moe_layer_interval", "top_k", "expert_gated", "capacity_factor", "eval_capacity_factor",
    "second_expert_policy", "num_groups", "rel_buckets", "rel_max_distance", "norm_eps",
    "aux_loss_weight", "z_loss_weight", "max_seq_len",
]


def full_config(cfg: dict) -> dict:
    """Fill defaults (d_ff_expert defaults to d_ff) and return a config with every key."""
    out = dict(CONFIG_DEFAULTS)
    out.update(cfg)
    out.setdefault("d_ff_expert", out["d_ff"])
    missing = [k for k in CONFIG_KEYS if k not in out]
    if missing:
        raise ValueError(f"config misses {missing}")
    if out["n_experts"] > 0 and out["top_k"] != 2:
        raise ValueError("only top_k = 2 is implemented")
    if out["second_expert_policy"] != "all":
        raise ValueError("this reference implements second_expert_policy 'all' only")
    return out


def is_moe_layer(cfg: dict, layer: int) -> bool:
    return cfg["n_experts"] > 0 and layer % cfg["moe_layer_interval"] == 0


def param_specs(cfg: dict) -> list[tuple[str, list[int]]]:
    """Every parameter as (name, shape), in canonical checkpoint order (as src/model/params.ts)."""
    D, HD, F = cfg["d_model"], cfg["n_heads"] * cfg["d_head"], cfg["d_ff"]
    specs: list[tuple[str, list[int]]] = [("embed.weight", [cfg["vocab_size"], D])]
    for l in range(cfg["n_layers"]):
        p = f"layers.{l}"
        specs += [
            (f"{p}.attn_norm.scale", [D]),
            (f"{p}.attn.wq", [D, HD]),
            (f"{p}.attn.wk", [D, HD]),
            (f"{p}.attn.wv", [D, HD]),
            (f"{p}.attn.wo", [HD, D]),
            (f"{p}.attn.rel_bias", [cfg["rel_buckets"], cfg["n_heads"]]),
            (f"{p}.ffn_norm.scale", [D]),
        ]
        if is_moe_layer(cfg, l):
            E, Fe = cfg["n_experts"], cfg["d_ff_expert"]
            specs.append((f"{p}.moe.router", [D, E]))
            if cfg["expert_gated"]:
                specs += [(f"{p}.moe.wi_0", [E, D, Fe]), (f"{p}.moe.wi_1", [E, D, Fe])]
            else:
                specs.append((f"{p}.moe.wi", [E, D, Fe]))
            specs.append((f"{p}.moe.wo", [E, Fe, D]))
        else:
            specs += [(f"{p}.ffn.wi_0", [D, F]), (f"{p}.ffn.wi_1", [D, F]), (f"{p}.ffn.wo", [F, D])]
    specs.append(("final_norm.scale", [D]))
    return specs


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm(x, s) = x / sqrt(mean(x^2) + eps) * s, over the last dimension."""
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * scale


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def rel_bucket(n: int, num_buckets: int, max_distance: int) -> int:
    """T5 unidirectional relative-position bucket of a distance n = i - j >= 0.

    Computed with the same float64 operations the spec writes down (Python floats are
    IEEE doubles, like JavaScript numbers):
    max_exact + floor(log(n / max_exact) / log(max_distance / max_exact) * (buckets - max_exact)).
    """
    max_exact = num_buckets // 2
    if n < max_exact:
        return n
    v = max_exact + math.floor(
        math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    )
    return min(num_buckets - 1, v)


def bucket_table(T: int, cfg: dict) -> list[int]:
    """bucket(n) for n = 0..T-1."""
    return [rel_bucket(n, cfg["rel_buckets"], cfg["rel_max_distance"]) for n in range(T)]


def attention(a: torch.Tensor, P: dict, prefix: str, cfg: dict) -> torch.Tensor:
    """Causal multi-head attention with a learned per-head relative-position bias."""
    B, T, _ = a.shape
    H, Dh = cfg["n_heads"], cfg["d_head"]

    def heads(x: torch.Tensor) -> torch.Tensor:  # [B,T,H*Dh] -> [B,H,T,Dh]; feature h*Dh + d is head h
        return x.view(B, T, H, Dh).transpose(1, 2)

    q = heads(a @ P[f"{prefix}.wq"])
    k = heads(a @ P[f"{prefix}.wk"])
    v = heads(a @ P[f"{prefix}.wv"])
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)  # [B,H,T,T]

    # bias[h, i, j] = rel_bias[bucket(i - j), h] for j <= i (j > i is masked anyway).
    table = bucket_table(T, cfg)
    idx = torch.tensor([[table[i - j] if j <= i else 0 for j in range(T)] for i in range(T)])
    bias = P[f"{prefix}.rel_bias"][idx]  # [T,T,H]
    scores = scores + bias.permute(2, 0, 1).unsqueeze(0)
    causal = torch.tensor([[j > i for j in range(T)] for i in range(T)])
    scores = scores.masked_fill(causal, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    o = (probs @ v).transpose(1, 2).reshape(B, T, H * Dh)  # concat_heads
    return o @ P[f"{prefix}.wo"]


def dense_ffn(f: torch.Tensor, P: dict, prefix: str) -> torch.Tensor:
    """Gated-GELU feed-forward: (gelu(f wi_0) * (f wi_1)) wo."""
    return (gelu_tanh(f @ P[f"{prefix}.wi_0"]) * (f @ P[f"{prefix}.wi_1"])) @ P[f"{prefix}.wo"]


def expert_ffn(x: torch.Tensor, P: dict, prefix: str, e: int, gated: bool) -> torch.Tensor:
    """Expert e applied to x [..., D]: gelu(x wi_e) wo_e, or gated like the dense layers."""
    if gated:
        hidden = gelu_tanh(x @ P[f"{prefix}.wi_0"][e]) * (x @ P[f"{prefix}.wi_1"][e])
    else:
        hidden = gelu_tanh(x @ P[f"{prefix}.wi"][e])
    return hidden @ P[f"{prefix}.wo"][e]


def argmax_lowest(values: list[float], exclude: int = -1) -> int:
    """Index of the largest value (ties: the lowest index), skipping `exclude`."""
    best = -1
    for i, v in enumerate(values):
        if i == exclude:
            continue
        if best < 0 or v > values[best]:
            best = i
    return best


@dataclass
class MoeStats:
    layer: int
    capacity: int | None  # None: no limit (dropless)
    load: list[int]  # assignments routed to each expert (first + second choices, before dropping)
    load_kept: list[int]  # assignments each expert actually processed
    first_choice: list[int]  # tokens whose first choice is each expert
    dropped: int  # assignments dropped (over both choices and all groups)
    assignments: int  # 2 * N
    router_entropy: float  # mean over tokens of -sum_e p log p
    aux: float  # this layer's aux loss (mean over groups)
    min_logit_gap: float  # smallest gap among the top-3 router logits of any token (routing robustness)
    e1: list[int] = field(default_factory=list)
    e2: list[int] = field(default_factory=list)
    kept1: list[bool] = field(default_factory=list)
    kept2: list[bool] = field(default_factory=list)


def route(p_rows: list[list[float]], S: int, E: int, capacity: int | None):
    """Top-2 routing and GShard capacity for one group of S tokens (probabilities as floats).

    Returns (e1, e2, kept1, kept2). First choices take expert slots in token order, then
    second choices in token order; an assignment past slot `capacity` is dropped.
    """
    e1 = [argmax_lowest(p_rows[t]) for t in range(S)]
    e2 = [argmax_lowest(p_rows[t], exclude=e1[t]) for t in range(S)]
    used = [0] * E
    kept1, kept2 = [False] * S, [False] * S
    for t in range(S):  # all first choices, in token order
        if capacity is None or used[e1[t]] < capacity:
            used[e1[t]] += 1
            kept1[t] = True
    for t in range(S):  # then all second choices, in token order
        if capacity is None or used[e2[t]] < capacity:
            used[e2[t]] += 1
            kept2[t] = True
    return e1, e2, kept1, kept2


def moe(f: torch.Tensor, P: dict, prefix: str, layer: int, cfg: dict, capacity_factor: float,
        impl: str = "loop") -> tuple[torch.Tensor, torch.Tensor, MoeStats]:
    """GShard top-2 MoE over f [N, D]; returns (output [N, D], aux loss of the layer, stats)."""
    N, D = f.shape
    E, G = cfg["n_experts"], cfg["num_groups"]
    if N % G != 0:
        raise ValueError(f"N = {N} tokens do not split into {G} equal groups")
    S = N // G
    # Capacity per expert per group; the factor already counts both choices. <= 0: no limit.
    capacity = math.ceil(capacity_factor * S / E) if capacity_factor > 0 else None
    gated = cfg["expert_gated"]

    logits = f @ P[f"{prefix}.router"]  # [N, E]
    p = torch.softmax(logits, dim=-1)

    e1_all: list[int] = []
    e2_all: list[int] = []
    kept1_all: list[bool] = []
    kept2_all: list[bool] = []
    aux_groups = []
    for g in range(G):
        lo = g * S
        p_rows = p[lo:lo + S].detach().tolist()
        e1, e2, kept1, kept2 = route(p_rows, S, E, capacity)
        e1_all += e1
        e2_all += e2
        kept1_all += kept1
        kept2_all += kept2
        # aux = E * sum_e mean_t p_t[e] * (fraction of tokens whose first choice is e).
        # The fraction is a constant: the gradient flows through p only.
        frac = torch.tensor([sum(1 for t in range(S) if e1[t] == e) / S for e in range(E)])
        aux_groups.append(E * (p[lo:lo + S].mean(dim=0) * frac).sum())
    aux = torch.stack(aux_groups).mean()

    # Normalised gates of the two choices (differentiable through p).
    rows = torch.arange(N)
    p1 = p[rows, torch.tensor(e1_all)]
    p2 = p[rows, torch.tensor(e2_all)]
    g1 = p1 / (p1 + p2)
    g2 = p2 / (p1 + p2)

    if impl == "loop":
        # The spec, literally: MoE(f)_t = sum over kept assignments of g * Expert_e(f_t).
        outs = []
        for t in range(N):
            y = torch.zeros(D, dtype=f.dtype)
            if kept1_all[t]:
                y = y + g1[t] * expert_ffn(f[t], P, prefix, e1_all[t], gated)
            if kept2_all[t]:
                y = y + g2[t] * expert_ffn(f[t], P, prefix, e2_all[t], gated)
            outs.append(y)
        out = torch.stack(outs)
    elif impl == "dense":
        # Cross-check: every expert on every token, combined with a masked gate matrix.
        combine = torch.zeros(N, E, dtype=f.dtype)
        m1 = torch.zeros(N, E, dtype=f.dtype)
        m2 = torch.zeros(N, E, dtype=f.dtype)
        for t in range(N):
            if kept1_all[t]:
                m1[t, e1_all[t]] = 1.0
            if kept2_all[t]:
                m2[t, e2_all[t]] = 1.0
        combine = m1 * g1.unsqueeze(1) + m2 * g2.unsqueeze(1)
        ys = torch.stack([expert_ffn(f, P, prefix, e, gated) for e in range(E)], dim=1)  # [N,E,D]
        out = (combine.unsqueeze(2) * ys).sum(dim=1)
    else:
        raise ValueError(impl)

    # Statistics.
    load = [0] * E
    load_kept = [0] * E
    first = [0] * E
    for t in range(N):
        load[e1_all[t]] += 1
        load[e2_all[t]] += 1
        first[e1_all[t]] += 1
        load_kept[e1_all[t]] += int(kept1_all[t])
        load_kept[e2_all[t]] += int(kept2_all[t])
    dropped = sum(not k for k in kept1_all) + sum(not k for k in kept2_all)
    pd = p.detach()
    entropy = float(-(pd * torch.log(pd)).sum(dim=-1).mean())
    gap = math.inf
    for row in logits.detach().tolist():
        s = sorted(row, reverse=True)
        gap = min(gap, s[0] - s[1], s[1] - s[2] if E > 2 else math.inf)
    stats = MoeStats(layer=layer, capacity=capacity, load=load, load_kept=load_kept, first_choice=first,
                     dropped=dropped, assignments=2 * N, router_entropy=entropy, aux=float(aux),
                     min_logit_gap=gap, e1=e1_all, e2=e2_all, kept1=kept1_all, kept2=kept2_all)
    return out, aux, stats


@dataclass
class Output:
    total: torch.Tensor
    lm: torch.Tensor
    z: torch.Tensor
    aux: torch.Tensor
    tokens: int
    moe: list[MoeStats]
    captured_f: dict  # layer -> f [N, D] (detached), for fixture construction


def trunk(P: dict, cfg: dict, inputs: torch.Tensor, capacity_factor: float, moe_impl: str = "loop"):
    """Steps 1-3 for inputs [B, T] (int64): (logits [B, T, V], aux total, MoE stats, captured f)."""
    B, T = inputs.shape
    D, eps = cfg["d_model"], cfg["norm_eps"]
    h = P["embed.weight"][inputs]  # 1. no scaling, no positional embedding
    aux_total = torch.zeros((), dtype=h.dtype)
    stats: list[MoeStats] = []
    captured = {}
    for l in range(cfg["n_layers"]):  # 2.
        pre = f"layers.{l}"
        a = rms_norm(h, P[f"{pre}.attn_norm.scale"], eps)
        h = h + attention(a, P, f"{pre}.attn", cfg)
        f = rms_norm(h, P[f"{pre}.ffn_norm.scale"], eps)
        if is_moe_layer(cfg, l):
            flat = f.reshape(B * T, D)  # token n = b*T + t; groups are contiguous runs of S tokens
            captured[l] = flat.detach().clone()
            y, aux, st = moe(flat, P, f"{pre}.moe", l, cfg, capacity_factor, moe_impl)
            h = h + y.view(B, T, D)
            aux_total = aux_total + aux
            stats.append(st)
        else:
            h = h + dense_ffn(f, P, f"{pre}.ffn")
    # 3. tied output embedding
    logits = (rms_norm(h, P["final_norm.scale"], eps) / math.sqrt(D)) @ P["embed.weight"].T  # [B,T,V]
    return logits, aux_total, stats, captured


def forward(P: dict, cfg: dict, inputs: torch.Tensor, targets: torch.Tensor, capacity_factor: float,
            moe_impl: str = "loop") -> Output:
    """The whole model and its loss for inputs/targets [B, T] (int64)."""
    B, T = inputs.shape
    logits, aux_total, stats, captured = trunk(P, cfg, inputs, capacity_factor, moe_impl)
    # 4. loss parts
    lse = torch.logsumexp(logits, dim=-1)  # [B,T]
    target_logit = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    lm = (lse - target_logit).mean()
    z = (lse * lse).mean()
    total = lm + cfg["z_loss_weight"] * z + cfg["aux_loss_weight"] * aux_total
    return Output(total=total, lm=lm, z=z, aux=aux_total, tokens=B * T, moe=stats, captured_f=captured)


# --------------------------------------------------------------------------------------
# safetensors (hand-written: 8-byte LE header length, JSON header, raw LE data)
# --------------------------------------------------------------------------------------


def write_safetensors(path: str, tensors: list[tuple[str, torch.Tensor]]) -> None:
    """Write F32 tensors in the given order; header padded with spaces to a multiple of 8."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors:
        values = t.detach().reshape(-1).tolist()
        data = struct.pack(f"<{len(values)}f", *values)  # rounds each value to float32
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(hjson)))
        fh.write(hjson)
        for b in blobs:
            fh.write(b)
    os.replace(tmp, path)


def read_safetensors(path: str) -> dict:
    """Read an F32 safetensors file into float64 torch tensors."""
    with open(path, "rb") as fh:
        raw = fh.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} has dtype {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        count = (b - a) // 4
        vals = struct.unpack(f"<{count}f", raw[base + a:base + b])
        out[name] = torch.tensor(vals, dtype=torch.float64).view(info["shape"])
    return out


def load_checkpoint(directory: str) -> tuple[dict, dict]:
    with open(os.path.join(directory, "config.json")) as fh:
        cfg = full_config({k: v for k, v in json.load(fh).items() if k not in ("format", "name")})
    tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
    P = {}
    for name, shape in param_specs(cfg):
        if name not in tensors:
            raise ValueError(f"{directory}: missing tensor {name}")
        if list(tensors[name].shape) != shape:
            raise ValueError(f"{directory}: {name} has shape {list(tensors[name].shape)}, expected {shape}")
        P[name] = tensors[name]
    return cfg, P


# --------------------------------------------------------------------------------------
# Parity cases
# --------------------------------------------------------------------------------------

BASE = {
    "vocab_size": 96, "d_model": 24, "n_layers": 4, "n_heads": 2, "d_head": 8, "d_ff": 32,
    "n_experts": 0, "d_ff_expert": 16, "moe_layer_interval": 2, "top_k": 2, "expert_gated": False,
    "capacity_factor": 2.0, "eval_capacity_factor": 0.0, "second_expert_policy": "all", "num_groups": 1,
    "rel_buckets": 8, "rel_max_distance": 16, "norm_eps": 1e-6, "aux_loss_weight": 0.01,
    "z_loss_weight": 1e-4, "max_seq_len": 16,
}

# name -> (description, config overrides, batch, seq_len, seed, router bias per MoE layer or None)
CASES = {
    "dense": (
        "dense model (n_experts 0): 3 layers of attention + gated-GELU FFN",
        {"n_layers": 3, "n_experts": 0, "d_ff_expert": 32},
        3, 12, 101, None,
    ),
    "moe_dropless": (
        "MoE layers 0 and 2 of 4, 4 plain-GELU experts, capacity_factor 0 (no capacity limit)",
        {"n_experts": 4, "capacity_factor": 0.0},
        3, 12, 202, None,
    ),
    "moe_dropped": (
        "MoE, 4 experts, capacity_factor 2.0 with a router biased towards experts 0 and 1 so that "
        "assignments overflow capacity and are dropped; larger aux/z weights; T 16 with "
        "rel_max_distance 12 so the bucket clamp (min(rel_buckets-1, .)) is exercised",
        {"n_experts": 4, "capacity_factor": 2.0, "aux_loss_weight": 0.1, "z_loss_weight": 1e-3,
         "rel_max_distance": 12},
        2, 16, 303, [3.0, 2.0, 0.0, 0.0],
    ),
    "moe_gated": (
        "expert_gated true (experts wi_0/wi_1/wo), 3 layers (MoE, dense, MoE), capacity_factor 2.0",
        {"n_layers": 3, "n_experts": 4, "expert_gated": True, "capacity_factor": 2.0},
        3, 12, 404, None,
    ),
    "moe_groups": (
        "num_groups 2 (capacity and aux per group), 8 experts of d_ff_expert 8, capacity_factor 2.0",
        {"n_experts": 8, "d_ff_expert": 8, "num_groups": 2, "capacity_factor": 2.0},
        4, 10, 505, None,
    ),
}

MIN_LOGIT_GAP = 2e-3  # routing decisions must not hinge on float32 rounding


def random_params(cfg: dict, gen: torch.Generator) -> dict:
    """Random (not spec-init) parameters chosen so that every term of the model matters:
    non-unit norm scales, non-zero relative biases, projections a bit above 1/fan_in."""
    P = {}
    for name, shape in param_specs(cfg):
        if name == "embed.weight":
            t = torch.randn(shape, generator=gen)
        elif name.endswith(".scale"):
            t = 1.0 + 0.3 * torch.randn(shape, generator=gen)
        elif name.endswith("rel_bias"):
            t = 0.5 * torch.randn(shape, generator=gen)
        elif name.endswith("router"):
            t = torch.randn(shape, generator=gen) * (1.5 / math.sqrt(shape[0]))
        else:
            fan_in = shape[-2]
            t = torch.randn(shape, generator=gen) * (1.3 / math.sqrt(fan_in))
        P[name] = t
    # The final norm scale sets the logit scale: make it larger so logits are non-trivial.
    P["final_norm.scale"] = P["final_norm.scale"] * 2.0
    return P


def bias_router(P: dict, cfg: dict, inputs, targets, layer: int, betas: list[float], cf: float) -> None:
    """Shift router logits of `layer` so expert e gains betas[e] on average over these tokens:
    router[:, e] += betas[e] * m / (m . m), m = mean over tokens of the router's input f."""
    with torch.no_grad():
        out = forward(P, cfg, inputs, targets, cf)
        m = out.captured_f[layer].mean(dim=0)
        r = P[f"layers.{layer}.moe.router"].clone()
        for e, b in enumerate(betas):
            r[:, e] += b * m / torch.dot(m, m)
        P[f"layers.{layer}.moe.router"] = r


def build_case(name: str):
    """Deterministically build a case; re-draw (seed + 1000 k) until routing is robust."""
    desc, over, B, T, seed, betas = CASES[name]
    cfg = full_config({**BASE, **over})
    cf = cfg["capacity_factor"]
    for attempt in range(50):
        gen = torch.Generator().manual_seed(seed + 1000 * attempt)
        P = random_params(cfg, gen)
        rows = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=gen)
        inputs, targets = rows[:, :-1], rows[:, 1:]
        if betas is not None:
            for l in range(cfg["n_layers"]):
                if is_moe_layer(cfg, l):
                    bias_router(P, cfg, inputs, targets, l, betas, cf)
        with torch.no_grad():
            out = forward(P, cfg, inputs, targets, cf)
        gaps = [s.min_logit_gap for s in out.moe]
        if all(g >= MIN_LOGIT_GAP for g in gaps):
            if name == "moe_dropped" and not all(s.dropped >= 4 for s in out.moe):
                continue
            return desc, cfg, B, T, seed + 1000 * attempt, P, rows
    raise RuntimeError(f"case {name}: no seed gave robust routing")


def loss_and_grads(P: dict, cfg: dict, rows: torch.Tensor, cf: float, moe_impl: str = "loop",
                   dtype=torch.float64):
    """Forward + autograd backward of the total loss; returns (Output, {name: grad})."""
    Pg = {k: v.detach().to(dtype).clone().requires_grad_(True) for k, v in P.items()}
    out = forward(Pg, cfg, rows[:, :-1], rows[:, 1:], cf, moe_impl)
    out.total.backward()
    return out, {k: v.grad.detach().to(torch.float64) for k, v in Pg.items()}


def grad_summary(g: torch.Tensor) -> dict:
    """Shape, L2 norm, max |g|, and values: all of them when small, else a deterministic sample
    (16 evenly spaced flat indices plus the index of max |g|) as [flat index, value] pairs."""
    flat = g.reshape(-1)
    n = flat.numel()
    if n <= 32:
        idx = list(range(n))
    else:
        idx = sorted(set([i * n // 16 for i in range(16)] + [int(flat.abs().argmax())]))
    return {
        "shape": list(g.shape),
        "l2": float(flat.norm()),
        "max_abs": float(flat.abs().max()),
        "sample": [[i, float(flat[i])] for i in idx],
    }


def stats_json(s: MoeStats) -> dict:
    return {
        "layer": s.layer,
        "capacity": s.capacity,
        "load": s.load,
        "load_kept": s.load_kept,
        "first_choice": s.first_choice,
        "dropped": s.dropped,
        "dropped_fraction": s.dropped / s.assignments,
        "router_entropy": s.router_entropy,
        "aux": s.aux,
        "min_router_logit_gap": s.min_logit_gap,
        "routing": {"e1": s.e1, "e2": s.e2, "kept1": s.kept1, "kept2": s.kept2},
    }


def format_expected(expected: dict) -> str:
    """JSON with one line per top-level key, per MoE layer and per gradient summary
    (readable in a diff, and compact)."""
    compact = {"separators": (", ", ": ")}
    lines = []
    for key, value in expected.items():
        if key in ("moe_layers", "grads"):
            items = value if isinstance(value, list) else list(value.items())
            inner = []
            for item in items:
                if isinstance(item, tuple):
                    inner.append(f"  {json.dumps(item[0])}: {json.dumps(item[1], **compact)}")
                else:
                    inner.append(f"  {json.dumps(item, **compact)}")
            open_, close = ("[", "]") if isinstance(value, list) else ("{", "}")
            lines.append(f"{json.dumps(key)}: {open_}\n" + ",\n".join(inner) + f"\n {close}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, **compact)}")
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def make_fixtures(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    for name in CASES:
        desc, cfg, B, T, seed, P, rows = build_case(name)
        cf = cfg["capacity_factor"]
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        config_json = {"format": FORMAT, **{k: cfg[k] for k in CONFIG_KEYS}}
        with open(os.path.join(d, "config.json"), "w") as fh:
            json.dump(config_json, fh, indent=2)
            fh.write("\n")
        specs = param_specs(cfg)
        write_safetensors(os.path.join(d, "model.safetensors"), [(n, P[n]) for n, _ in specs])
        with open(os.path.join(d, "tokens.json"), "w") as fh:
            fh.write("[\n" + ",\n".join("  " + json.dumps(r) for r in rows.tolist()) + "\n]\n")

        # Reference values are computed from the parameters as stored (rounded to float32),
        # so the TypeScript model sees exactly the same weights.
        cfg2, P2 = load_checkpoint(d)
        assert cfg2 == cfg
        out, grads = loss_and_grads(P2, cfg, rows, cf)
        assert all(s.min_logit_gap >= MIN_LOGIT_GAP for s in out.moe), name
        write_safetensors(os.path.join(d, "grads.safetensors"), [(n, grads[n]) for n, _ in specs])
        expected = {
            "case": name,
            "description": desc,
            "generator": "/usr/bin/python3 tools/torch_glam.py make-fixtures test/fixtures/parity",
            "torch_version": torch.__version__,
            "seed": seed,
            "dtype": "float64 reference computed from the float32 weights in model.safetensors",
            "batch": B,
            "seq_len": T,
            "capacity_factor": cf,
            "lm_loss": float(out.lm),
            "z_loss": float(out.z),
            "aux_loss": float(out.aux),
            "total_loss": float(out.total),
            "tokens": out.tokens,
            "dropped": sum(s.dropped for s in out.moe),
            "rel_bucket_by_distance": bucket_table(T, cfg),
            "moe_layers": [stats_json(s) for s in out.moe],
            "grads_file": "grads.safetensors",
            "grads": {n: grad_summary(grads[n]) for n, _ in specs},
        }
        with open(os.path.join(d, "expected.json"), "w") as fh:
            fh.write(format_expected(expected))
        print(f"{name}: lm={out.lm:.6f} z={out.z:.6f} aux={out.aux:.6f} total={out.total:.6f} "
              f"dropped={expected['dropped']} tokens={out.tokens} "
              f"gaps={[round(s.min_logit_gap, 4) for s in out.moe]}")


# --------------------------------------------------------------------------------------
# Adafactor and the training trajectory
# --------------------------------------------------------------------------------------


class Adafactor:
    """Adafactor as docs/model.md "Adafactor" states GLaM's: no first moment, beta2_t = 1 - t^-0.8,
    eps1 = 1e-30 added to g^2, factored statistics for every matrix of a stack whose two dimensions
    are both >= 2 (leading dimensions index the stack: an expert tensor [E, D, F] is E matrices),
    a full second moment otherwise, update clipping at RMS 1 per matrix; the learning rate absolute
    (param_scale False, GLaM's paper) or relative: each matrix's update times max(eps2, RMS(theta))
    of that matrix before the update (param_scale True, the project's default recipe).
    Written from the page, not from the TypeScript; in place, in the parameters' dtype (float64 for
    the trajectory fixture, float32 in bench/train_torch.py)."""

    def __init__(self, decay_exponent: float = 0.8, eps1: float = 1e-30, clip: float = 1.0,
                 param_scale: bool = False, eps2: float = 1e-3):
        self.decay_exponent, self.eps1, self.clip = decay_exponent, eps1, clip
        self.param_scale, self.eps2 = param_scale, eps2
        self.t = 0
        self.state: dict[str, tuple[torch.Tensor, ...]] = {}

    @staticmethod
    def factored(shape) -> bool:
        return len(shape) >= 2 and shape[-1] >= 2 and shape[-2] >= 2

    def _state(self, name: str, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if name not in self.state:
            if self.factored(p.shape):  # row statistics [..., rows], column statistics [..., cols]
                self.state[name] = (p.new_zeros(p.shape[:-1]), p.new_zeros(p.shape[:-2] + p.shape[-1:]))
            else:
                self.state[name] = (p.new_zeros(p.shape),)
        return self.state[name]

    @torch.no_grad()
    def step(self, P: dict, grads: dict, lr: float) -> None:
        """P[name] <- P[name] - lr * U for every parameter, in place."""
        self.t += 1
        mix = self.t ** (-self.decay_exponent)  # 1 - beta2_t
        beta2 = 1.0 - mix
        for name, p in P.items():
            g = grads[name]
            q = g * g + self.eps1
            st = self._state(name, p)
            if len(st) == 2:
                r, c = st
                r.mul_(beta2).add_(q.sum(dim=-1), alpha=mix)
                c.mul_(beta2).add_(q.sum(dim=-2), alpha=mix)
                # V_ij = R_i C_j / sum(R), so U = g * rsqrt(R_i / sum(R)) * rsqrt(C_j).
                u = g * torch.rsqrt(r / r.sum(dim=-1, keepdim=True)).unsqueeze(-1) * torch.rsqrt(c).unsqueeze(-2)
                rms = u.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()  # per matrix of the stack
            else:
                (v,) = st
                v.mul_(beta2).add_(q, alpha=mix)
                u = g * torch.rsqrt(v)
                rms = (u.pow(2).mean(dim=(-2, -1), keepdim=True) if p.dim() >= 2 else u.pow(2).mean()).sqrt()
            u.div_((rms / self.clip).clamp_(min=1.0))
            if self.param_scale:  # per matrix of a stack, like the clipping; a vector as a whole
                dims = (-2, -1) if p.dim() >= 2 else (-1,)
                u.mul_(p.pow(2).mean(dim=dims, keepdim=True).sqrt().clamp_(min=self.eps2))
            p.sub_(u, alpha=lr)


def glam_lr(t: int, peak: float = 0.01, decay_start: int = 10000) -> float:
    """GLaM's schedule (docs/model.md "Training recipe"): peak until decay_start, then peak*sqrt(ds/t)."""
    return peak if t <= decay_start else peak * math.sqrt(decay_start / t)


TRAJECTORY = {
    "description": "10 Adafactor steps of GLaM's recipe on an MoE model (layers 0 and 2 of 4, 4 experts, "
                   "capacity_factor 2.0 with drops), a fresh batch each step, from the float32 weights in "
                   "model.safetensors; once with the paper's absolute steps at 0.01 (losses, final_checksums), "
                   "once with the default recipe's relative steps at 0.03 (relative: the same fields)",
    "recipes": {"absolute": {"param_scale": False, "peak_lr": 0.01},
                "relative": {"param_scale": True, "peak_lr": 0.03}},
    "config": {"n_experts": 4, "capacity_factor": 2.0},
    "batch": 2, "seq_len": 16, "steps": 10, "seed": 606,
}


def run_trajectory(P: dict, cfg: dict, batches: list, dtype=torch.float64, param_scale: bool = False,
                   peak_lr: float = 0.01) -> tuple[list, dict, float]:
    """Train P (copied) for len(batches) steps; returns (per-step losses, final P, min router gap)."""
    Pt = {k: v.detach().to(dtype).clone() for k, v in P.items()}  # plain tensors: the optimiser's
    opt = Adafactor(param_scale=param_scale)
    losses, gap = [], math.inf
    cf = cfg["capacity_factor"]
    for rows in batches:
        out, grads = loss_and_grads(Pt, cfg, rows, cf, dtype=dtype)
        gap = min([gap] + [s.min_logit_gap for s in out.moe])
        losses.append({"total": float(out.total), "lm": float(out.lm), "z": float(out.z),
                       "aux": float(out.aux), "dropped": sum(s.dropped for s in out.moe)})
        norm2 = sum(float((g * g).sum()) for g in grads.values())
        if not math.isfinite(norm2):
            raise RuntimeError("non-finite gradients in the trajectory")
        opt.step(Pt, grads, glam_lr(opt.t + 1, peak_lr))
    return losses, Pt, gap


def make_trajectory(outdir: str) -> None:
    """The llm.c-style trajectory fixture: initial weights, batches, per-step losses, final checksums."""
    tr = TRAJECTORY
    cfg = full_config({**BASE, **tr["config"]})
    B, T, steps = tr["batch"], tr["seq_len"], tr["steps"]
    for attempt in range(50):
        seed = tr["seed"] + 1000 * attempt
        gen = torch.Generator().manual_seed(seed)
        P = random_params(cfg, gen)
        batches = [torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=gen) for _ in range(steps)]
        P = {k: v.to(torch.float32).to(torch.float64) for k, v in P.items()}  # as stored
        runs = {name: run_trajectory(P, cfg, batches, **r) for name, r in tr["recipes"].items()}
        if all(gap >= MIN_LOGIT_GAP and losses[0]["dropped"] > 0 for losses, _, gap in runs.values()):
            break
    else:
        raise RuntimeError("trajectory: no seed gave robust routing over every step")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "config.json"), "w") as fh:
        json.dump({"format": FORMAT, **{k: cfg[k] for k in CONFIG_KEYS}}, fh, indent=2)
        fh.write("\n")
    specs = param_specs(cfg)
    write_safetensors(os.path.join(outdir, "model.safetensors"), [(n, P[n]) for n, _ in specs])
    with open(os.path.join(outdir, "batches.json"), "w") as fh:
        fh.write("[\n" + ",\n".join("  " + json.dumps(b.tolist()) for b in batches) + "\n]\n")
    def checksums(final: dict) -> dict:
        return {n: {"sum": float(final[n].sum()), "l2": float(final[n].norm()),
                    "abs_sum": float(final[n].abs().sum())} for n, _ in specs}

    losses, final, gap = runs["absolute"]
    rel_losses, rel_final, rel_gap = runs["relative"]
    expected = {
        "description": tr["description"],
        "generator": "/usr/bin/python3 tools/torch_glam.py make-trajectory test/fixtures/trajectory",
        "torch_version": torch.__version__,
        "seed": seed,
        "dtype": "float64 model and Adafactor, from the float32 weights in model.safetensors",
        "batch": B, "seq_len": T, "steps": steps,
        "min_router_logit_gap": min(gap, rel_gap),
        "losses": losses,
        "final_checksums": checksums(final),
        "relative": {**tr["recipes"]["relative"], "losses": rel_losses, "final_checksums": checksums(rel_final)},
    }
    with open(os.path.join(outdir, "expected.json"), "w") as fh:
        fh.write(format_expected(expected))
    for name, (ls, _, g) in runs.items():
        print(f"trajectory {name}, seed {seed}: loss {ls[0]['total']:.6f} -> {ls[-1]['total']:.6f}, "
              f"dropped {[l['dropped'] for l in ls]}, min gap {g:.4f}")


# --------------------------------------------------------------------------------------
# Self-checks
# --------------------------------------------------------------------------------------


def gshard_vectorised_routing_agrees(st: MoeStats, cfg: dict, N: int) -> bool:
    """Recompute which assignments are kept the way GShard's code does (one-hot masks, cumsum
    positions; second-choice positions start after the kept first choices) and compare."""
    E, G = cfg["n_experts"], cfg["num_groups"]
    S = N // G
    C = st.capacity if st.capacity is not None else 2 * S  # no limit: nothing can overflow
    kept1, kept2 = [], []
    for g in range(G):
        e1 = torch.tensor(st.e1[g * S:(g + 1) * S])
        e2 = torch.tensor(st.e2[g * S:(g + 1) * S])
        mask1 = torch.nn.functional.one_hot(e1, E)
        pos1 = torch.cumsum(mask1, dim=0) - 1
        mask1 = mask1 * (pos1 < C)
        mask2 = torch.nn.functional.one_hot(e2, E)
        pos2 = torch.cumsum(mask2, dim=0) - 1 + mask1.sum(dim=0, keepdim=True)
        mask2 = mask2 * (pos2 < C)
        kept1 += [bool(v) for v in mask1.sum(dim=1)]
        kept2 += [bool(v) for v in mask2.sum(dim=1)]
    return kept1 == st.kept1 and kept2 == st.kept2


def check() -> int:
    """(i) gradients vs central finite differences (float64); (ii) the dropped case drops;
    (iii) loop and dense MoE formulations agree; (iv) float32 vs float64 deviation (what the
    TypeScript float32 model can be expected to reach)."""
    failures = 0
    for name in CASES:
        _desc, cfg, _B, _T, _seed, P, rows = build_case(name)
        # Round weights to float32 as the fixtures do.
        P = {k: v.to(torch.float32).to(torch.float64) for k, v in P.items()}
        cf = cfg["capacity_factor"]
        out, grads = loss_and_grads(P, cfg, rows, cf)

        # (i) finite differences on a few entries of several tensors.
        fd_err = 0.0
        names = [n for n, _ in param_specs(cfg) if any(s in n for s in (
            "embed", "layers.0.attn.wq", "layers.0.attn.rel_bias", "layers.0.moe.router", "layers.0.moe.wi",
            "layers.1.ffn.wi_1", "layers.2.moe.wo", "layers.0.ffn_norm", "final_norm"))]
        gen = torch.Generator().manual_seed(7)
        eps = 1e-6
        with torch.no_grad():
            for n in names:
                for _ in range(3):
                    i = int(torch.randint(0, P[n].numel(), (1,), generator=gen))
                    Pp = {k: v.clone() for k, v in P.items()}
                    Pm = {k: v.clone() for k, v in P.items()}
                    Pp[n].view(-1)[i] += eps
                    Pm[n].view(-1)[i] -= eps
                    lp = float(forward(Pp, cfg, rows[:, :-1], rows[:, 1:], cf).total)
                    lm_ = float(forward(Pm, cfg, rows[:, :-1], rows[:, 1:], cf).total)
                    fd = (lp - lm_) / (2 * eps)
                    an = float(grads[n].view(-1)[i])
                    scale = max(float(grads[n].abs().max()), 1e-8)
                    fd_err = max(fd_err, abs(fd - an) / scale)
        ok_fd = fd_err < 1e-6

        # (ii) drops.
        dropped = sum(s.dropped for s in out.moe)
        ok_drop = dropped > 0 if name == "moe_dropped" else True
        if cfg["capacity_factor"] <= 0:
            ok_drop = ok_drop and dropped == 0

        # (iii) loop vs dense MoE.
        ok_dense = True
        dense_err = 0.0
        if cfg["n_experts"] > 0:
            out_d, grads_d = loss_and_grads(P, cfg, rows, cf, moe_impl="dense")
            dense_err = abs(float(out_d.total) - float(out.total))
            for n in grads:
                dense_err = max(dense_err, float((grads[n] - grads_d[n]).abs().max()))
            ok_dense = dense_err < 1e-12

        # (iii b) the loop router vs a vectorised GShard router (one-hot + cumsum slot positions).
        ok_route = True
        for st in out.moe:
            ok_route = ok_route and gshard_vectorised_routing_agrees(st, cfg, rows.shape[0] * (rows.shape[1] - 1))

        # (iv) float32.
        out32, grads32 = loss_and_grads(P, cfg, rows, cf, dtype=torch.float32)
        loss_rel = max(abs(float(getattr(out32, k)) - float(getattr(out, k))) / max(abs(float(getattr(out, k))), 1e-12)
                       for k in ("lm", "z", "total") + (("aux",) if cfg["n_experts"] > 0 else ()))
        grad_rel = max(float((grads32[n] - grads[n]).abs().max()) / max(float(grads[n].abs().max()), 1e-30)
                       for n in grads)
        ok32 = loss_rel < 1e-5 and grad_rel < 1e-3

        ok = ok_fd and ok_drop and ok_dense and ok_route and ok32
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: fd_err/max|g|={fd_err:.2e} dropped={dropped} "
              f"loop-vs-dense={dense_err:.2e} vectorised-routing={'agrees' if ok_route else 'DIFFERS'} f32 loss rel={loss_rel:.2e} f32 grad err/max|g|={grad_rel:.2e}")
    return failures


def eval_cmd(ckpt: str, tokens_path: str, capacity_factor: float | None) -> None:
    cfg, P = load_checkpoint(ckpt)
    with open(tokens_path) as fh:
        rows = torch.tensor(json.load(fh), dtype=torch.int64)
    cf = cfg["capacity_factor"] if capacity_factor is None else capacity_factor
    with torch.no_grad():
        out = forward(P, cfg, rows[:, :-1], rows[:, 1:], cf)
    print(json.dumps({"lm_loss": float(out.lm), "z_loss": float(out.z), "aux_loss": float(out.aux),
                      "total_loss": float(out.total), "tokens": out.tokens,
                      "dropped": sum(s.dropped for s in out.moe),
                      "moe_layers": [{"layer": s.layer, "load": s.load, "dropped": s.dropped, "aux": s.aux}
                                     for s in out.moe]}, indent=1))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-fixtures", help="write the parity fixtures")
    mk.add_argument("outdir")
    mt = sub.add_parser("make-trajectory", help="write the 10-step Adafactor trajectory fixture")
    mt.add_argument("outdir")
    sub.add_parser("check", help="run the self-checks")
    ev = sub.add_parser("eval", help="loss parts of a checkpoint on a tokens.json")
    ev.add_argument("checkpoint")
    ev.add_argument("tokens")
    ev.add_argument("--capacity-factor", type=float, default=None)
    args = ap.parse_args(argv)
    if args.cmd == "make-fixtures":
        make_fixtures(args.outdir)
        return 0
    if args.cmd == "make-trajectory":
        make_trajectory(args.outdir)
        return 0
    if args.cmd == "check":
        return 1 if check() else 0
    eval_cmd(args.checkpoint, args.tokens, args.capacity_factor)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
