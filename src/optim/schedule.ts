/**
 * Learning-rate schedules: pure functions of the 1-based update number t (the
 * optimizer's stepCount + 1). Every schedule starts with an optional linear
 * warm-up, lr = peak · t / warmup_steps for t < warmup_steps (0 at t = 0).
 *
 * - 'rsqrt' (GLaM): constant peak_lr up to decay_start, then peak_lr · sqrt(decay_start / t).
 *   The paper: peak 0.01, decay_start 10000, no warm-up. An optional cool-down (not GLaM's) then
 *   scales the rate linearly to 0 over [cooldown_start, total_steps], so a run of known length ends
 *   annealed (the last update still moves: its rate is peak · decay / (total_steps - start + 1)).
 * - 'constant': peak_lr.
 * - 'cosine': from peak_lr at the end of warm-up down to min_lr at total_steps, then min_lr.
 */
/** A linear cool-down towards 0 over the updates (start, total_steps]; 0 <= start <= total_steps. */
export interface Cooldown {
  start: number;
  total_steps: number;
}

export type LrSchedule =
  | {
      kind: 'rsqrt';
      peak_lr: number;
      warmup_steps: number;
      decay_start: number;
      cooldown?: Cooldown;
    }
  | { kind: 'constant'; peak_lr: number; warmup_steps: number }
  | { kind: 'cosine'; peak_lr: number; warmup_steps: number; total_steps: number; min_lr: number };

/** GLaM's schedule as the paper gives it (an absolute 0.01); the default recipe's peak is in optim/create.ts. */
export const GLAM_SCHEDULE: Readonly<Extract<LrSchedule, { kind: 'rsqrt' }>> = {
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
    case 'rsqrt': {
      const decay = t > s.decay_start ? Math.sqrt(s.decay_start / t) : 1;
      return s.peak_lr * warm * decay * cooldownFactor(s.cooldown, t);
    }
    case 'cosine': {
      if (t < s.warmup_steps) return s.peak_lr * warm;
      const span = s.total_steps - s.warmup_steps;
      const progress = span > 0 ? Math.min(1, (t - s.warmup_steps) / span) : 1;
      return s.min_lr + (s.peak_lr - s.min_lr) * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
  }
}

/** 1 up to the cool-down's start, then down in equal steps to 1/(total - start + 1) at total_steps, then 0. */
function cooldownFactor(c: Cooldown | undefined, t: number): number {
  if (c === undefined || t <= c.start) return 1;
  return Math.max(0, (c.total_steps + 1 - t) / (c.total_steps + 1 - c.start));
}

/** Throws unless `fraction` (named `name` in the message) is a cool-down fraction, in [0, 1). */
export function checkCooldownFraction(fraction: number, name: string): void {
  if (!(fraction >= 0 && fraction < 1))
    throw new Error(`${name} must be a fraction in [0, 1), got ${fraction}`);
}

/** The cool-down over the last `fraction` of a run of `totalSteps` updates (none for fraction 0). */
export function cooldownOver(fraction: number, totalSteps: number): Cooldown | undefined {
  checkCooldownFraction(fraction, 'cool-down fraction');
  if (fraction === 0) return undefined;
  if (!(Number.isInteger(totalSteps) && totalSteps > 0))
    throw new Error(`a cool-down needs the run's length in steps, got ${totalSteps}`);
  return { start: Math.round(totalSteps * (1 - fraction)), total_steps: totalSteps };
}
