import { alignedFloat32 } from '../backend/index.js';

export type Shape = readonly number[];

/** Number of elements of a shape; throws on a non-integer or negative dimension. */
export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(', ')}]: dimension ${d}`);
    n *= d;
  }
  return n;
}

export function shapeString(shape: Shape): string {
  // Bounded: shapes in error messages may come from a damaged file.
  if (shape.length > 16) return `[${shape.slice(0, 8).join(', ')}, ... (${shape.length} dimensions)]`;
  return `[${shape.join(', ')}]`;
}

/**
 * A shape-checked view on Float32 storage. Tensors never own a copy implicitly:
 * `view`, `rows` and `row` share storage with their parent.
 */
export class Tensor {
  readonly data: Float32Array;
  readonly shape: Shape;

  constructor(data: Float32Array, shape: Shape) {
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new Error(
        `tensor of shape ${shapeString(shape)} needs ${n} elements, storage has ${data.length}`,
      );
    }
    this.data = data;
    this.shape = [...shape];
  }

  /** A fresh zero tensor on 64-byte-aligned storage. */
  static zeros(shape: Shape): Tensor {
    return new Tensor(alignedFloat32(shapeSize(shape)), shape);
  }

  /** A fresh aligned tensor holding a copy of `values`. */
  static from(values: ArrayLike<number>, shape: Shape): Tensor {
    const t = Tensor.zeros(shape);
    if (values.length !== t.size) {
      throw new Error(
        `Tensor.from: ${values.length} values for shape ${shapeString(shape)} (${t.size} elements)`,
      );
    }
    t.data.set(values);
    return t;
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Dimension i; negative i counts from the end. */
  dim(i: number): number {
    const j = i < 0 ? this.shape.length + i : i;
    const d = this.shape[j];
    if (d === undefined) throw new Error(`dim ${i} out of range for shape ${shapeString(this.shape)}`);
    return d;
  }

  /** Same storage, new shape (element count must match). */
  view(shape: Shape): Tensor {
    return new Tensor(this.data, shape);
  }

  /** Rows [start, end) along the first dimension, sharing storage. */
  rows(start: number, end: number): Tensor {
    const n0 = this.dim(0);
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= n0)) {
      throw new Error(`rows(${start}, ${end}) out of range for shape ${shapeString(this.shape)}`);
    }
    const inner = n0 === 0 ? 0 : this.size / n0;
    return new Tensor(this.data.subarray(start * inner, end * inner), [end - start, ...this.shape.slice(1)]);
  }

  /** Row i along the first dimension (rank drops by one), sharing storage. */
  row(i: number): Tensor {
    return this.rows(i, i + 1).view(this.shape.slice(1));
  }

  fill(value: number): this {
    this.data.fill(value);
    return this;
  }

  copyFrom(src: Tensor): this {
    assertSameShape('copyFrom', this, src);
    this.data.set(src.data);
    return this;
  }

  /** A new aligned tensor with a copy of the data. */
  clone(): Tensor {
    return Tensor.from(this.data, this.shape);
  }
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(`${op}: shape mismatch ${shapeString(a.shape)} vs ${shapeString(b.shape)}`);
  }
}

export function assertShape(op: string, name: string, t: Tensor, shape: Shape): void {
  if (!sameShape(t.shape, shape)) {
    throw new Error(`${op}: ${name} has shape ${shapeString(t.shape)}, expected ${shapeString(shape)}`);
  }
}
