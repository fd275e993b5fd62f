import type { Kernels } from './kernels.js';
import { referenceKernels } from './reference.js';

export type { Kernels } from './kernels.js';
export { referenceKernels } from './reference.js';

// TODO(native helper): load the addon, pick it when available, say once when falling back.
let active: Kernels = referenceKernels;

/** The kernels in use (native when the addon loads, else the TypeScript reference). */
export function kernels(): Kernels {
  return active;
}

/** Force a backend (tests, benchmarks). */
export function useKernels(k: Kernels): void {
  active = k;
}

/** A zeroed Float32Array of n elements whose data starts on a 64-byte boundary. */
export function alignedFloat32(n: number): Float32Array {
  return new Float32Array(n);
}
