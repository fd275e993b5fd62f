/**
 * Test helpers, including a deliberately naive float64 Adafactor written from
 * the paper (Alg. 4) with explicit 2-D arrays, independent of src/optim.
 */
import assert from 'node:assert/strict';
import type { Params } from '../../src/model/params.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';

export function tensor(values: number[], shape: number[]): Tensor {
  return Tensor.from(values, shape);
}

export function params(entries: [string, Tensor][]): Params {
  return new Map(entries);
}

export function cloneParams(p: Params): Params {
  return new Map([...p].map(([k, t]) => [k, t.clone()]));
}

export function randomParams(shapes: [string, number[]][], seed: number, std = 1): Params {
  const rng = new Rng(seed);
  const out = new Map<string, Tensor>();
  for (const [name, shape] of shapes) {
    const t = Tensor.zeros(shape);
    rng.fillNormal(t.data, std);
    out.set(name, t);
  }
  return out;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = '',
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e);
    if (!(err <= tol * Math.max(1, Math.abs(e)))) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e} (|diff| ${err} > tol ${tol})`);
    }
  }
}

export function assertBitEqual(a: Params, b: Params, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()], `${what}: names`);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    assert.deepEqual(t.shape, u.shape, `${what} ${name}: shape`);
    const x = new Uint32Array(t.data.buffer, t.data.byteOffset, t.size);
    const y = new Uint32Array(u.data.buffer, u.data.byteOffset, u.size);
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== y[i]) assert.fail(`${what} ${name}[${i}]: ${t.data[i]} vs ${u.data[i]}`);
    }
  }
}

/** Simulate writing to and reading back from a file: a fresh byte copy of every tensor. */
export function roundTripThroughBytes(m: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of m) {
    const bytes = Buffer.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    out.set(name, new Tensor(new Float32Array(copy.buffer), t.shape));
  }
  return out;
}

type Matrix = number[][];

interface RefMatrixState {
  R: number[];
  C: number[];
}

export interface RefAdafactorOptions {
  factored: boolean;
  clipThreshold: number;
  rmsScope: 'matrix' | 'tensor';
}

/**
 * One parameter of shape [..., n, m] (or [n]) in float64: a list of matrices.
 * `step` returns the clipping denominators it used, one per matrix (or one for the tensor).
 */
export class RefAdafactorParam {
  theta: Matrix[];
  private readonly stats: RefMatrixState[];
  private readonly full: Matrix[];
  private t = 0;

  constructor(
    values: ArrayLike<number>,
    readonly shape: number[],
    readonly opts: RefAdafactorOptions,
  ) {
    this.theta = toMatrices(values, shape);
    this.stats = this.theta.map((m) => ({ R: m.map(() => 0), C: m[0]!.map(() => 0) }));
    this.full = this.theta.map((m) => m.map((row) => row.map(() => 0)));
  }

  step(gradValues: ArrayLike<number>, lr: number): number[] {
    this.t += 1;
    const beta2 = 1 - this.t ** -0.8;
    const eps1 = 1e-30;
    const grads = toMatrices(gradValues, this.shape);
    const updates: Matrix[] = grads.map((G, s) => {
      const n = G.length;
      const m = G[0]!.length;
      const sq = G.map((row) => row.map((g) => g * g + eps1));
      let Vhat: Matrix;
      if (this.opts.factored) {
        const st = this.stats[s]!;
        for (let i = 0; i < n; i++) {
          let rowSum = 0;
          for (let j = 0; j < m; j++) rowSum += sq[i]![j]!;
          st.R[i] = beta2 * st.R[i]! + (1 - beta2) * rowSum;
        }
        for (let j = 0; j < m; j++) {
          let colSum = 0;
          for (let i = 0; i < n; i++) colSum += sq[i]![j]!;
          st.C[j] = beta2 * st.C[j]! + (1 - beta2) * colSum;
        }
        const total = st.R.reduce((a, b) => a + b, 0);
        Vhat = st.R.map((r) => st.C.map((c) => (r * c) / total));
      } else {
        const V = this.full[s]!;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < m; j++) V[i]![j] = beta2 * V[i]![j]! + (1 - beta2) * sq[i]![j]!;
        }
        Vhat = V;
      }
      return G.map((row, i) => row.map((g, j) => g / Math.sqrt(Vhat[i]![j]!)));
    });
    const rms = (ms: Matrix[]): number => {
      const flat = ms.flat(2);
      return Math.sqrt(flat.reduce((a, u) => a + u * u, 0) / flat.length);
    };
    const denoms =
      this.opts.rmsScope === 'matrix'
        ? updates.map((U) => Math.max(1, rms([U]) / this.opts.clipThreshold))
        : [Math.max(1, rms(updates) / this.opts.clipThreshold)];
    updates.forEach((U, s) => {
      const d = this.opts.rmsScope === 'matrix' ? denoms[s]! : denoms[0]!;
      const th = this.theta[s]!;
      U.forEach((row, i) => {
        row.forEach((u, j) => {
          th[i]![j] = th[i]![j]! - (lr * u) / d;
        });
      });
    });
    return denoms;
  }

  flatTheta(): number[] {
    return this.theta.flat(2);
  }

  /** Factored statistics as [R of all matrices, C of all matrices]. */
  factors(): [number[], number[]] {
    return [this.stats.flatMap((s) => s.R), this.stats.flatMap((s) => s.C)];
  }
}

function toMatrices(values: ArrayLike<number>, shape: number[]): Matrix[] {
  const n = shape.length >= 2 ? shape[shape.length - 2]! : 1;
  const m = shape[shape.length - 1]!;
  const count = values.length / (n * m);
  const out: Matrix[] = [];
  let k = 0;
  for (let s = 0; s < count; s++) {
    const mat: Matrix = [];
    for (let i = 0; i < n; i++) {
      const row: number[] = [];
      for (let j = 0; j < m; j++) row.push(values[k++]!);
      mat.push(row);
    }
    out.push(mat);
  }
  return out;
}
