/**
 * bf16 ("brain float"): the upper 16 bits of a float32 (sign, 8-bit exponent, 7-bit mantissa), the
 * storage of bf16 weights (safetensors dtype BF16) and the operand format of the bf16 kernels. Rounding is
 * to nearest, ties to even, with the same integer steps as the native core (native/core/pack_impl.h), so
 * both backends round every value alike; a NaN stays a (quiet) NaN, and values beyond the largest bf16
 * round to ±Infinity as IEEE rounding does.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bits nearest to x (first rounded to float32). */
export function bf16Bits(x: number): number {
  f32[0] = x;
  return roundBits(u32[0]!);
}

/** The float value of bf16 bits. */
export function bf16Value(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** x rounded to the nearest bf16 value (as a float). */
export function roundToBf16(x: number): number {
  return bf16Value(bf16Bits(x));
}

function roundBits(u: number): number {
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** src rounded to bf16 bits, into `out` (a new Uint16Array by default). */
export function toBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length < src.length) throw new Error(`toBf16: out has ${out.length} elements, needs ${src.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = roundBits(bits[i]!);
  return out;
}

/** bf16 bits widened to float32 (exact), into `out` (a new Float32Array by default). */
export function fromBf16(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length)
    throw new Error(`fromBf16: out has ${out.length} elements, needs ${src.length}`);
  const bits = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}
