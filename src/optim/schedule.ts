export type LrSchedule =
  | { kind: 'rsqrt'; peak_lr: number; warmup_steps: number; decay_start: number }
  | { kind: 'constant'; peak_lr: number; warmup_steps: number }
  | { kind: 'cosine'; peak_lr: number; warmup_steps: number; total_steps: number; min_lr: number };

/** GLaM's recipe: 0.01 for the first 10k steps, then 0.01 · sqrt(10000 / t). */
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
