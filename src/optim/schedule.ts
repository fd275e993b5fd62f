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
export type LrSchedule =
  | { kind: 'rsqrt'; peak_lr: number; warmup_steps: number; decay_start: number }
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
