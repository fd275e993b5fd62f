/**
 * Scoring rows of token ids with a model: the loss parts of a forward pass.
 *
 * A row of T+1 ids gives inputs row[0..T-1] and targets row[1..T]. Rows may
 * differ in length: rows of equal length are scored together in batches (in file
 * order) of at most batchTokens(cfg) tokens, so memory does not grow with the
 * number of rows, and the parts are combined weighted by target tokens. With a
 * capacity limit the result depends on how tokens are batched (capacity is per
 * group of tokens), so a file of equal-length rows within one batch reproduces
 * exactly what one forward pass over them reports; capacity factor 0 (dropless)
 * makes every token's lm and z loss independent of the others' (the aux loss is
 * a statistic of each batch's routing, so it still depends on the batching).
 */
import type { GlamConfig } from '../model/config.js';
import type { GlamModel, MoeStats } from '../model/glam.js';
import type { Weights } from '../model/weights.js';
import { briefValue, READ_LIMITS, readTextFile } from '../util/files.js';
import type { Rng } from '../util/rng.js';

export interface ScoreOptions {
  /** Overrides the config's capacity_factor (<= 0: dropless). */
  capacityFactor?: number;
  /** Needed for second_expert_policy 'random'. */
  rng?: Rng;
  /** Tokens per forward pass at most (default batchTokens(config)). */
  maxBatchTokens?: number;
}

/**
 * Tokens scored per forward pass: the logits (tokens x vocabulary floats) kept near 128 MB,
 * between 1,024 and 16,384 tokens.
 */
export function batchTokens(cfg: GlamConfig): number {
  return Math.max(1024, Math.min(16384, Math.floor((1 << 25) / cfg.vocab_size)));
}

export interface MoeLayerScore {
  layer: number;
  /** Kept assignments per expert, summed over batches. */
  load: number[];
  dropped: number;
  dropped_fraction: number;
  router_entropy: number;
  aux: number;
}

export interface ScoreResult {
  /** Mean cross-entropy over all target tokens. */
  lm_loss: number;
  /** Mean logsumexp(logits)² over all target tokens (unweighted). */
  z_loss: number;
  /** Σ over MoE layers of their aux loss (unweighted), token-weighted over batches. */
  aux_loss: number;
  /** lm_loss + z_loss_weight·z_loss + aux_loss_weight·aux_loss. */
  total_loss: number;
  tokens: number;
  /** Assignments dropped for lack of capacity, over all MoE layers and batches. */
  dropped: number;
  rows: number;
  capacity_factor: number;
  moe: MoeLayerScore[];
}

/**
 * Parse and validate a tokens file's text: a non-empty JSON array of rows, each
 * an array of at least 2 integer ids in [0, vocab_size), with T = length - 1 <=
 * max_seq_len.
 */
export function parseTokenRows(text: string, cfg: GlamConfig, source = 'tokens'): number[][] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new Error(
      `${source}: expected a non-empty JSON array of rows of token ids, e.g. [[1, 2, 3], [4, 5, 6]]`,
    );
  }
  raw.forEach((row: unknown, r: number) => {
    if (!Array.isArray(row)) throw new Error(`${source}: row ${r} is not an array of token ids`);
    if (row.length < 2) {
      throw new Error(
        `${source}: row ${r} has ${row.length} token(s); a row needs at least 2 (inputs row[0..T-1], targets row[1..T])`,
      );
    }
    if (row.length - 1 > cfg.max_seq_len) {
      throw new Error(
        `${source}: row ${r} has ${row.length} tokens: T = ${row.length - 1} exceeds max_seq_len ${cfg.max_seq_len}`,
      );
    }
    row.forEach((id: unknown, i: number) => {
      if (typeof id !== 'number' || !Number.isInteger(id)) {
        throw new Error(`${source}: row ${r}, position ${i}: ${briefValue(id)} is not an integer token id`);
      }
      if (id < 0 || id >= cfg.vocab_size) {
        throw new Error(
          `${source}: row ${r}, position ${i}: token id ${id} is outside the vocabulary [0, ${cfg.vocab_size})`,
        );
      }
    });
  });
  return raw as number[][];
}

/** Read and validate a tokens file. */
export function readTokenRows(file: string, cfg: GlamConfig): number[][] {
  return parseTokenRows(readTextFile(file, READ_LIMITS.tokens, 'tokens file'), cfg, file);
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Rows grouped by length, in order of first appearance. */
function byLength(rows: number[][]): number[][][] {
  const groups = new Map<number, number[][]>();
  for (const row of rows) {
    const g = groups.get(row.length);
    if (g === undefined) groups.set(row.length, [row]);
    else g.push(row);
  }
  return [...groups.values()];
}

/** Score validated rows (see parseTokenRows) with `model`. */
export function scoreTokenRows(
  model: GlamModel,
  weights: Weights,
  rows: number[][],
  opts: ScoreOptions = {},
): ScoreResult {
  const cfg = model.config;
  const capacityFactor = opts.capacityFactor ?? cfg.capacity_factor;
  let tokens = 0;
  let lm = 0;
  let z = 0;
  let aux = 0;
  let dropped = 0;
  const layers = new Map<number, MoeLayerScore>();
  const ws = model.workspace();
  for (const group of byLength(rows)) {
    const B = group.length;
    const T = group[0]!.length - 1;
    if (cfg.n_experts > 0 && (B * T) % cfg.num_groups !== 0) {
      throw new Error(
        `the ${B} row(s) of length ${T + 1} hold ${B * T} tokens, not divisible by num_groups ${cfg.num_groups}`,
      );
    }
    // Rows per forward pass: within the token budget, a multiple of what num_groups needs.
    const unit = cfg.n_experts > 0 ? cfg.num_groups / gcd(T, cfg.num_groups) : 1;
    const budget = opts.maxBatchTokens ?? batchTokens(cfg);
    const rowsPerPass = Math.max(unit, Math.floor(budget / T / unit) * unit);
    for (let start = 0; start < B; start += rowsPerPass) {
      const chunk = group.slice(start, start + rowsPerPass);
      const Bc = chunk.length;
      const inputs = new Int32Array(Bc * T);
      const targets = new Int32Array(Bc * T);
      chunk.forEach((row, b) => {
        for (let t = 0; t < T; t++) {
          inputs[b * T + t] = row[t]!;
          targets[b * T + t] = row[t + 1]!;
        }
      });
      const parts = model.forward(
        weights,
        ws,
        { inputs, targets, batch: Bc, seqLen: T },
        { capacityFactor, rng: opts.rng },
      );
      const n = parts.tokens;
      tokens += n;
      lm += parts.lm * n;
      z += parts.z * n;
      aux += parts.aux * n;
      dropped += parts.dropped;
      for (const s of parts.moe) accumulateLayer(layers, s, n);
    }
  }
  const moe = [...layers.values()].map((s) => ({
    ...s,
    dropped_fraction: tokens > 0 ? s.dropped / (cfg.top_k * tokens) : 0,
    router_entropy: tokens > 0 ? s.router_entropy / tokens : 0,
    aux: tokens > 0 ? s.aux / tokens : 0,
  }));
  const mean = (sum: number) => (tokens > 0 ? sum / tokens : 0);
  const result = { lm_loss: mean(lm), z_loss: mean(z), aux_loss: mean(aux) };
  return {
    ...result,
    total_loss: result.lm_loss + cfg.z_loss_weight * result.z_loss + cfg.aux_loss_weight * result.aux_loss,
    tokens,
    dropped,
    rows: rows.length,
    capacity_factor: capacityFactor,
    moe,
  };
}

/** Sums per layer; entropy and aux weighted by tokens (divided out at the end). */
function accumulateLayer(layers: Map<number, MoeLayerScore>, s: MoeStats, tokens: number): void {
  let acc = layers.get(s.layer);
  if (acc === undefined) {
    acc = {
      layer: s.layer,
      load: s.load.map(() => 0),
      dropped: 0,
      dropped_fraction: 0,
      router_entropy: 0,
      aux: 0,
    };
    layers.set(s.layer, acc);
  }
  s.load.forEach((v, e) => {
    acc.load[e]! += v;
  });
  acc.dropped += s.dropped;
  acc.router_entropy += s.routerEntropy * tokens;
  acc.aux += s.aux * tokens;
}
