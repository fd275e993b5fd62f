/**
 * A one-line terminal progress bar on stderr. On a TTY it redraws in place at most
 * every 100 ms; elsewhere (CI, pipes) it prints a plain line every `plainEvery` updates.
 */
export interface ProgressOptions {
  total: number;
  label?: string;
  width?: number;
  plainEvery?: number;
  stream?: NodeJS.WriteStream;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export class ProgressBar {
  readonly total: number;
  private readonly label: string;
  private readonly width: number;
  private readonly plainEvery: number;
  private readonly stream: NodeJS.WriteStream;
  private readonly start = performance.now();
  private lastDraw = 0;
  private updates = 0;

  constructor(opts: ProgressOptions) {
    this.total = Math.max(1, opts.total);
    this.label = opts.label ?? '';
    this.width = opts.width ?? 24;
    this.plainEvery = opts.plainEvery ?? 10;
    this.stream = opts.stream ?? process.stderr;
  }

  get isTTY(): boolean {
    return this.stream.isTTY === true;
  }

  /**
   * Show progress `done` of total with a status text; `force` draws regardless of rate limits.
   * `times` gives the elapsed and remaining seconds when the caller knows them better than the
   * bar's own estimate (elapsed since the bar was made, remaining by linear extrapolation).
   */
  update(done: number, status: string, force = false, times?: { elapsed?: number; eta?: number }): void {
    this.updates++;
    const now = performance.now();
    const frac = Math.min(1, Math.max(0, done / this.total));
    const elapsed = times?.elapsed ?? (now - this.start) / 1000;
    const eta =
      times !== undefined && 'eta' in times
        ? (times.eta ?? Number.NaN)
        : frac > 0
          ? (elapsed * (1 - frac)) / frac
          : Number.NaN;
    // Times before the status, and a bar that narrows (to 8) before the status is cut: on a
    // narrow terminal the line loses its end, never the estimate.
    const rest = ` ${(frac * 100).toFixed(0).padStart(3)}% ${formatDuration(elapsed)} < ${formatDuration(eta)} | ${status}`;
    const cols = this.isTTY ? (this.stream.columns ?? 120) : Number.POSITIVE_INFINITY;
    const width = Math.max(8, Math.min(this.width, cols - 1 - this.label.length - rest.length));
    const filled = Math.round(frac * width);
    const line = `${this.label}${'█'.repeat(filled)}${'░'.repeat(width - filled)}${rest}`;
    if (this.isTTY) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
    } else if (force || this.updates % this.plainEvery === 0) {
      this.stream.write(`${line}\n`);
    }
  }

  /** Print a message above the bar without corrupting it. */
  log(message: string): void {
    this.stream.write(this.isTTY ? `\r\x1b[K${message}\n` : `${message}\n`);
    this.lastDraw = 0;
  }

  /** The last line: at `done` (default: all of it; a run stopped early ends where it stopped). */
  finish(status: string, done = this.total, times?: { elapsed?: number; eta?: number }): void {
    this.update(done, status, true, times);
    if (this.isTTY) this.stream.write('\n');
  }
}
