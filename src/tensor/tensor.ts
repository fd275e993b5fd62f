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

/** A copy of `shape` after checking that storage of `length` elements holds exactly it; `what` names the tensor kind. */
export function checkedShape(what: string, length: number, shape: Shape): Shape {
  const n = shapeSize(shape);
  if (length !== n) {
    throw new Error(`${what} of shape ${shapeString(shape)} needs ${n} elements, storage has ${length}`);
  }
  return [...shape];
}

/**
 * A shape-checked view on Float32 storage. Tensors never own a copy implicitly:
 * `view`, `rows` and `row` share storage with their parent.
 */
export class Tensor {
  readonly data: Float32Array;
  readonly shape: Shape;

  constructor(data: Float32Array, shape: Shape) {
    this.shape = checkedShape('tensor', data.length, shape);
    this.data = data;
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

  /** Row i along the first dimension (rank drops by one), sharing storage: one expert of a stack. */
  row(i: number): Tensor {
    const n0 = this.shape[0] ?? 0;
    if (!(Number.isInteger(i) && 0 <= i && i < n0)) {
      throw new Error(`row ${i} out of range for shape ${shapeString(this.shape)}`);
    }
    const inner = this.size / n0;
    return new Tensor(this.data.subarray(i * inner, (i + 1) * inner), this.shape.slice(1));
  }

  fill(value: number): this {
    this.data.fill(value);
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
