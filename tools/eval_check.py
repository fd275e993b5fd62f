#!/usr/bin/python3
"""Independent check of `glam eval`'s rank classification, in PyTorch.

From the raw data files and a checkpoint, this script builds the zero-shot prompts
(lm-evaluation-harness's wording, as glam eval documents it), tokenizes them with
its own implementation of the checkpoint's tokenizer (tokenizer.json: pre-tokenizer,
BPE merges by rank, byte fallback), runs the model of tools/torch_glam.py in float64
and writes, per example, the context as scored, each candidate's text,
log-likelihood and token count, the prediction and the gold answer: the same record
`glam eval --predictions` writes. test/eval/parity.test.ts compares the two.

Four task types: multiple choice (generic {query, choices, gold}, as PIQA), schema
(generic {context_options, continuation, gold}, as WinoGrande), language modelling
(generic {context, continuation}, as LAMBADA) and a SuperGLUE pair task (RTE).

    /usr/bin/python3 tools/eval_check.py CHECKPOINT_DIR DATA_DIR OUT.jsonl

Only the standard library and torch are used.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_glam  # noqa: E402

# ------------------------------------------------------------------------------------
# Tokenizer (tokenizer.json, format glam-moe-tokenizer/1)
# ------------------------------------------------------------------------------------

# JavaScript's \s: the whitespace the pre-tokenizer's regular expression splits on.
JS_SPACE = set("\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | {
    chr(c) for c in range(0x2000, 0x200B)
}
MAX_PIECE = 64  # UTF-16 code units
SPACE_SYMBOL = "\u2581"
BYTE_OFFSET = 4
FIRST_LEARNED = BYTE_OFFSET + 256


def is_space(c: str) -> bool:
    return c in JS_SPACE


def is_letter(c: str) -> bool:  # \p{L} or \p{M}
    return unicodedata.category(c)[0] in "LM"


def is_number(c: str) -> bool:  # \p{N}
    return unicodedata.category(c)[0] == "N"


def is_other(c: str) -> bool:  # [^\s\p{L}\p{M}\p{N}]
    return not (is_space(c) or is_letter(c) or is_number(c))


def pieces(text: str) -> list[str]:
    """The pre-tokenizer, alternative by alternative as its regular expression tries them:
    ' ?letters', ' ?digits{1,3}', ' ?other', whitespace that leaves its last space to a
    following word, whitespace; pieces over 64 UTF-16 units are cut."""
    out = []
    i, n = 0, len(text)

    def run(start: int, pred, limit: int = 1 << 30) -> int:
        end = start
        while end < n and end - start < limit and pred(text[end]):
            end += 1
        return end

    while i < n:
        sp = text[i] == " " and i + 1 < n
        end = -1
        for pred, limit in ((is_letter, 1 << 30), (is_number, 3), (is_other, 1 << 30)):
            if sp and pred(text[i + 1]):
                end = run(i + 1, pred, limit)
            elif pred(text[i]):
                end = run(i, pred, limit)
            if end >= 0:
                break
        if end < 0:  # whitespace
            e = run(i, is_space)
            end = e - 1 if e - 1 > i and text[e - 1] == " " and e < n else e
        out.extend(cut_long(text[i:end]))
        i = end
    return out


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def cut_long(p: str) -> list[str]:
    if utf16_len(p) <= MAX_PIECE:
        return [p]
    out, cur, units = [], "", 0
    for ch in p:
        u = utf16_len(ch)
        if units + u > MAX_PIECE:
            out.append(cur)
            cur, units = "", 0
        cur += ch
        units += u
    if cur:
        out.append(cur)
    return out


class Tokenizer:
    def __init__(self, path: str):
        with open(path, encoding="utf-8") as fh:
            j = json.load(fh)
        if j.get("format") != "glam-moe-tokenizer/1" or j.get("pretokenizer") != "glam-v1":
            raise ValueError(f"{path}: unsupported tokenizer")
        self.pieces = j["pieces"]
        nc = j["num_chars"]
        self.char_id = {}
        for k in range(nc):
            ch = self.pieces[FIRST_LEARNED + k]
            self.char_id[" " if ch == SPACE_SYMBOL else ch] = FIRST_LEARNED + k
        self.first_merge = FIRST_LEARNED + nc
        self.rank = {(a, b): r for r, (a, b) in enumerate(j["merges"])}
        self.merges = j["merges"]
        self.eos = j["special_tokens"]["eos"]

    def encode_piece(self, piece: str) -> list[int]:
        syms = []
        for ch in piece:
            if ch in self.char_id and ch != SPACE_SYMBOL:
                syms.append(self.char_id[ch])
            else:
                syms.extend(BYTE_OFFSET + b for b in ch.encode("utf-8"))
        while len(syms) > 1:
            ranks = [self.rank.get((syms[k], syms[k + 1])) for k in range(len(syms) - 1)]
            present = [r for r in ranks if r is not None]
            if not present:
                break
            best = min(present)
            a, b = self.merges[best]
            merged, k = [], 0
            while k < len(syms):
                if k + 1 < len(syms) and syms[k] == a and syms[k + 1] == b:
                    merged.append(self.first_merge + best)
                    k += 2
                else:
                    merged.append(syms[k])
                    k += 1
            syms = merged
        return syms

    def encode(self, text: str) -> list[int]:
        out = []
        for p in pieces(text):
            out.extend(self.encode_piece(p))
        return out


# ------------------------------------------------------------------------------------
# Prompts (zero-shot), as glam eval documents them
# ------------------------------------------------------------------------------------


def delimit(answer: str, prompt: str) -> str:
    """A space between prompt and answer unless one side already has whitespace there."""
    if prompt[-1:].isspace() or answer[:1].isspace():
        return answer
    return " " + answer


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def multiple_choice(path: str) -> list[dict]:
    """Generic MC for a question task (PIQA): the query with lm-eval's "\\nAnswer:" cue."""
    out = []
    for i, r in enumerate(read_jsonl(path)):
        q = r["query"]
        ctx = q if re.search(r"Answer:\s*$", q) else q.rstrip() + "\nAnswer:"
        out.append({"id": str(i), "contexts": [ctx] * len(r["choices"]),
                    "conts": [delimit(c, ctx) for c in r["choices"]], "gold": r["gold"], "shared": True})
    return out


def schema(path: str) -> list[dict]:
    out = []
    for i, r in enumerate(read_jsonl(path)):
        ctxs = r["context_options"]
        out.append({"id": str(i), "contexts": ctxs, "conts": [delimit(r["continuation"], c) for c in ctxs],
                    "gold": r["gold"], "shared": False})
    return out


def language_modelling(path: str) -> list[dict]:
    out = []
    for i, r in enumerate(read_jsonl(path)):
        out.append({"id": str(i), "contexts": [r["context"]], "conts": [delimit(r["continuation"], r["context"])],
                    "gold": delimit(r["continuation"], r["context"]), "shared": True, "lm": True})
    return out


def rte(path: str) -> list[dict]:
    out = []
    for i, r in enumerate(read_jsonl(path)):
        ctx = f"{r['premise']}\nQuestion: {r['hypothesis']} True or False?\nAnswer:"
        gold = {"entailment": 0, "not_entailment": 1}[r["label"]]
        out.append({"id": str(r.get("idx", i)), "contexts": [ctx, ctx], "conts": [" True", " False"],
                    "gold": gold, "shared": True})
    return out


# ------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------


def encode_pair(tok: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Trailing whitespace of the context moves to the continuation; the continuation's ids
    are what the whole text adds after the context's ids (or its own ids if they differ)."""
    stripped = context.rstrip(" \t\n\r\v\f")
    trail = context[len(stripped):]
    ctx = tok.encode(stripped)
    whole = tok.encode(stripped + trail + continuation)
    if whole[: len(ctx)] == ctx:
        return ctx, whole[len(ctx):]
    return ctx, tok.encode(trail + continuation)


def score(P: dict, cfg: dict, tok: Tokenizer, context: str, continuation: str) -> tuple[float, int, bool]:
    """Σ log p of the continuation after [eos] + context (the last max_seq_len + 1 tokens), its token
    count, and whether each of its tokens is the argmax."""
    ctx, cont = encode_pair(tok, context, continuation)
    seq = ([tok.eos] + ctx + cont)[-(cfg["max_seq_len"] + 1):]
    n = min(len(cont), len(seq) - 1)
    inputs = torch.tensor([seq[:-1]], dtype=torch.int64)
    logits, _, _, _ = torch_glam.trunk(P, cfg, inputs, cfg["eval_capacity_factor"], moe_impl="dense")
    logp = torch.log_softmax(logits[0], dim=-1)
    T = len(seq) - 1
    lp, greedy = 0.0, True
    for p in range(T - n, T):
        target = seq[p + 1]
        lp += float(logp[p, target])
        greedy = greedy and int(torch.argmax(logp[p])) == target
    return lp, n, greedy


def first_argmax(xs: list[float]) -> int:
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__)
        return 2
    ckpt, data, out_path = argv[1], argv[2], argv[3]
    cfg, P = torch_glam.load_checkpoint(ckpt)
    tok = Tokenizer(os.path.join(ckpt, "tokenizer.json"))
    tasks = [
        ("piqa", multiple_choice(os.path.join(data, "mc.jsonl"))),
        ("winogrande", schema(os.path.join(data, "schema.jsonl"))),
        ("lambada", language_modelling(os.path.join(data, "lambada.jsonl"))),
        ("rte", rte(os.path.join(data, "rte.jsonl"))),
    ]
    lines = []
    with torch.no_grad():
        for task, examples in tasks:
            for ex in examples:
                scored = [score(P, cfg, tok, c, k) for c, k in zip(ex["contexts"], ex["conts"])]
                cands = [{"text": k, "logprob": lp, "tokens": n} for k, (lp, n, _) in zip(ex["conts"], scored)]
                if ex.get("lm"):
                    prediction = 1 if scored[0][2] else 0
                else:
                    prediction = first_argmax([lp / max(1, n) for lp, n, _ in scored])
                lines.append({
                    "task": task,
                    "id": ex["id"],
                    "context": ex["contexts"][0] if ex["shared"] else ex["contexts"],
                    "candidates": cands,
                    "prediction": prediction,
                    "gold": ex["gold"],
                })
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    print(f"wrote {len(lines)} examples to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
