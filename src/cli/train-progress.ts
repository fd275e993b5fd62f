/**
 * What `glam train` shows while it runs: a progress bar over the step, token or time budget
 * whose status keeps the latest validation loss in view, an estimate of the time left from
 * the training rate (not from start-up), and a last line at the point where the run stopped.
 */
import type { StepRecord } from '../train/trainer.js';
import { ProgressBar } from '../util/progress.js';

export interface TrainProgressOptions {
  /** Steps the run will take (from --max-steps or --max-tokens), or 0 when a time budget bounds it. */
  totalSteps: number;
  /** The time budget in seconds (0 when steps or tokens bound the run). */
  timeBudget: number;
  stream?: NodeJS.WriteStream;
}

export class TrainProgress {
  private readonly bar: ProgressBar;
  private lastVal: { step: number; loss: number } | undefined;
  /** The first step of this session and when it ended: the rate is measured from there. */
  private first: { step: number; at: number } | undefined;
  private last: { done: number; elapsed: number; eta: number } = { done: 0, elapsed: 0, eta: Number.NaN };

  constructor(private readonly opts: TrainProgressOptions) {
    const total = opts.timeBudget > 0 && opts.totalSteps === 0 ? opts.timeBudget : opts.totalSteps;
    this.bar = new ProgressBar({
      total: Math.max(total, 1),
      label: 'train ',
      plainEvery: 20,
      ...(opts.stream === undefined ? {} : { stream: opts.stream }),
    });
  }

  get isTTY(): boolean {
    return this.bar.isTTY;
  }

  /** The latest validation loss seen, if any. */
  get validation(): { step: number; loss: number } | undefined {
    return this.lastVal;
  }

  step(r: StepRecord): void {
    const now = performance.now() / 1000;
    const byTime = this.opts.timeBudget > 0 && this.opts.totalSteps === 0;
    let eta: number;
    if (byTime) eta = Math.max(0, this.opts.timeBudget - r.elapsed_s);
    else if (this.first === undefined || r.step <= this.first.step) eta = Number.NaN;
    else eta = ((now - this.first.at) / (r.step - this.first.step)) * (this.opts.totalSteps - r.step);
    if (this.first === undefined) this.first = { step: r.step, at: now };
    const fresh = r.val_loss !== undefined;
    if (fresh) this.lastVal = { step: r.step, loss: r.val_loss! };
    const val =
      this.lastVal === undefined ? '' : ` | val ${this.lastVal.loss.toFixed(3)} @${this.lastVal.step}`;
    const done = byTime ? r.elapsed_s : r.step;
    this.last = { done, elapsed: r.elapsed_s, eta };
    this.bar.update(
      done,
      `step ${r.step} loss ${r.loss.toFixed(3)}${val} | lr ${r.lr.toExponential(1)} ${Math.round(r.tokens_per_s)} tok/s`,
      fresh,
      { elapsed: r.elapsed_s, eta },
    );
    if (fresh && !this.bar.isTTY)
      this.bar.log(`step ${r.step}: loss ${r.loss.toFixed(4)} val ${r.val_loss!.toFixed(4)}`);
  }

  log(message: string): void {
    this.bar.log(message);
  }

  /** The last bar line: full when the run reached its budget, where it stopped otherwise. */
  finish(step: number, loss: number, stopped: boolean): void {
    const val =
      this.lastVal === undefined ? '' : ` | val ${this.lastVal.loss.toFixed(3)} @${this.lastVal.step}`;
    const status = `step ${step} loss ${loss.toFixed(3)}${val}${stopped ? ' (stopped)' : ''}`;
    if (stopped) this.bar.finish(status, this.last.done, { elapsed: this.last.elapsed, eta: Number.NaN });
    else this.bar.finish(status, undefined, { elapsed: this.last.elapsed, eta: 0 });
  }
}
