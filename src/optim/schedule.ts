/**
 * Learning-rate schedules: pure functions of the 1-based update number t (the
 * optimizer's stepCount + 1). Every schedule starts with an optional linear
 * warm-up, lr = peak · t / warmup_steps for t < warmup_steps (0 at t = 0).
 *
 * - 'rsqrt' (GLaM): constant peak_lr up to decay_start, then peak_lr · sqrt(decay_start / t).
 *   The paper: peak 0.01, decay_start 10000, no warm-up.
 * - 'constant': peak_lr.
 * - 'cosine': from peak_lr at the end of warm-up down to min_lr at total_steps, then min_lr.
 */
import { briefValue } from '../util/files.js';
export type LrSchedule =
  | { kind: 'rsqrt'; peak_lr: number; warmup_steps: number; decay_start: number }
  | { kind: 'constant'; peak_lr: number; warmup_steps: number }
  | { kind: 'cosine'; peak_lr: number; warmup_steps: number; total_steps: number; min_lr: number };

/** GLaM's recipe: 0.01 for the first 10k steps, then 0.01 · sqrt(10000 / t). */
export const GLAM_SCHEDULE: LrSchedule = {
  kind: 'rsqrt',
  peak_lr: 0.01,
  warmup_steps: 0,
  decay_start: 10000,
};

export function learningRate(s: LrSchedule, t: number): number {
  if (!(Number.isFinite(t) && t >= 0))
    throw new Error(`learningRate: step must be a finite number >= 0, got ${t}`);
  const warm = s.warmup_steps > 0 ? Math.min(1, t / s.warmup_steps) : 1;
  switch (s.kind) {
    case 'constant':
      return s.peak_lr * warm;
    case 'rsqrt':
      return s.peak_lr * warm * (t > s.decay_start ? Math.sqrt(s.decay_start / t) : 1);
    case 'cosine': {
      if (t < s.warmup_steps) return s.peak_lr * warm;
      const span = s.total_steps - s.warmup_steps;
      const progress = span > 0 ? Math.min(1, (t - s.warmup_steps) / span) : 1;
      return s.min_lr + (s.peak_lr - s.min_lr) * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
  }
}

/**
 * Validate a schedule from JSON (trainer config). Missing keys take GLaM's
 * values (kind 'rsqrt', peak_lr 0.01, warmup_steps 0, decay_start 10000, min_lr 0);
 * unknown keys are refused so typos do not pass silently.
 */
export function parseLrSchedule(raw: unknown, source = 'lr_schedule'): LrSchedule {
  if (raw === undefined) return { ...GLAM_SCHEDULE };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${source}: expected a JSON object`);
  }
  const obj = raw as Record<string, unknown>;
  const kind = obj.kind ?? 'rsqrt';
  const keys: Record<string, readonly string[]> = {
    rsqrt: ['decay_start'],
    constant: [],
    cosine: ['total_steps', 'min_lr'],
  };
  if (typeof kind !== 'string' || !(kind in keys)) {
    throw new Error(
      `${source}: 'kind' must be one of ${Object.keys(keys).join(', ')}, got ${briefValue(kind)}`,
    );
  }
  const allowed = new Set(['kind', 'peak_lr', 'warmup_steps', ...keys[kind]!]);
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) throw new Error(`${source}: unknown key '${key}' for kind '${kind}'`);
  }
  const num = (key: string, dflt: number | undefined, min: number, integer: boolean): number => {
    const v = obj[key] ?? dflt;
    if (v === undefined) throw new Error(`${source}: missing required key '${key}'`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      const what = integer ? 'an integer' : 'a finite number';
      throw new Error(`${source}: '${key}' must be ${what} >= ${min}, got ${briefValue(v)}`);
    }
    return v;
  };
  const peak_lr = num('peak_lr', GLAM_SCHEDULE.peak_lr, 0, false);
  const warmup_steps = num('warmup_steps', 0, 0, true);
  switch (kind) {
    case 'constant':
      return { kind, peak_lr, warmup_steps };
    case 'cosine': {
      const total_steps = num('total_steps', undefined, warmup_steps, true);
      const min_lr = num('min_lr', 0, 0, false);
      if (min_lr > peak_lr) throw new Error(`${source}: min_lr ${min_lr} exceeds peak_lr ${peak_lr}`);
      return { kind, peak_lr, warmup_steps, total_steps, min_lr };
    }
    default:
      return { kind: 'rsqrt', peak_lr, warmup_steps, decay_start: num('decay_start', 10000, 1, true) };
  }
}
