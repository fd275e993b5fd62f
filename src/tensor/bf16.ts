/**
 * bf16 tensors: weights stored in bf16 (the upper half of each float32, ../backend/bf16.ts), as bf16
 * checkpoints hold them and the bf16 products (gemmBf16) read them: half the bytes of float32.
 */
import { fromBf16, toBf16 } from '../backend/index.js';
import { checkedShape, type Shape, Tensor } from './tensor.js';

export class Bf16Tensor {
  readonly data: Uint16Array;
  readonly shape: Shape;

  constructor(data: Uint16Array, shape: Shape) {
    this.shape = checkedShape('bf16 tensor', data.length, shape);
    this.data = data;
  }

  /** A float32 tensor rounded to bf16 (nearest even). */
  static fromTensor(t: Tensor): Bf16Tensor {
    return new Bf16Tensor(toBf16(t.data), t.shape);
  }

  get size(): number {
    return this.data.length;
  }

  /** The values widened to float32 (exact) in a new aligned tensor. */
  toTensor(): Tensor {
    const t = Tensor.zeros(this.shape);
    fromBf16(this.data, t.data);
    return t;
  }
}

/** A stored tensor: float32 or bf16. */
export type AnyTensor = Tensor | Bf16Tensor;
