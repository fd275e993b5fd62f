import { checkThreadsEnv, loadNative } from './native.js';
import type { Kernels } from './ops.js';
import { referenceKernels } from './reference.js';

export { bf16Bits, bf16Value, fromBf16, roundToBf16, toBf16 } from './bf16.js';
export {
  type AnyMat,
  type BMat,
  bmat,
  colRange,
  type Mat,
  mat,
  matIndex,
  rowRange,
  transpose,
} from './mat.js';
export {
  type BandwidthResult,
  loadNative,
  type NativeInfo,
  type NativeKernels,
  type PeakResult,
} from './native.js';
export { type ArgKind, type KernelOps, type Kernels, OP_NAMES, OPS, type OpName } from './ops.js';
export { PRECISIONS, type Precision, parsePrecision, withPrecision } from './precision.js';
export { referenceKernels, type TopTwo, topTwo } from './reference.js';

let active: Kernels | undefined;

/**
 * The backend from the environment: GLAM_BACKEND=reference forces the TypeScript kernels,
 * GLAM_BACKEND=native requires the addon; unset picks native when it loads and otherwise says once,
 * on stderr, that the (much slower) reference kernels run and why.
 */
function chooseKernels(): Kernels {
  checkThreadsEnv();
  const wanted = process.env.GLAM_BACKEND ?? '';
  if (wanted === 'reference') return referenceKernels;
  if (wanted !== '' && wanted !== 'native') {
    throw new Error(`GLAM_BACKEND must be 'native' or 'reference', got '${wanted}'`);
  }
  const native = loadNative();
  if (native.ok) return native.kernels;
  if (wanted === 'native')
    throw new Error(`GLAM_BACKEND=native but the addon did not load: ${native.reason}`);
  process.stderr.write(
    `glam: warning: native kernels unavailable (${native.reason}); running the pure TypeScript reference ` +
      'kernels, which are much slower. Build the addon with `npm run install` (node-gyp rebuild).\n',
  );
  return referenceKernels;
}

/** The kernels in use (native when the addon loads, else the TypeScript reference). */
export function kernels(): Kernels {
  active ??= chooseKernels();
  return active;
}

/** Force a backend (tests, benchmarks). */
export function useKernels(k: Kernels): void {
  active = k;
}

/**
 * A zeroed Float32Array of n elements whose data starts on a 64-byte boundary (a cache line: packed GEMM
 * panels and vector loads then never straddle lines). Backing stores of ArrayBuffers do not move, so the
 * addon is asked once for the address and the view is offset to the next boundary. Without the addon
 * (or with GLAM_BACKEND=reference, which never loads it), a plain Float32Array.
 */
export function alignedFloat32(n: number): Float32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`alignedFloat32: invalid length ${n}`);
  if (process.env.GLAM_BACKEND === 'reference') return new Float32Array(n);
  const native = loadNative();
  if (!native.ok) return new Float32Array(n);
  const buffer = new ArrayBuffer(n * 4 + 64);
  const misalign = native.kernels.addon.addressMod64(buffer);
  if (misalign % 4 !== 0) return new Float32Array(n);
  return new Float32Array(buffer, (64 - misalign) % 64, n);
}
