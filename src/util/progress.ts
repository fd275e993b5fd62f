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

  /** Show progress `done` of total with a status text; `force` draws regardless of rate limits. */
  update(done: number, status: string, force = false): void {
    this.updates++;
    const now = performance.now();
    const frac = Math.min(1, Math.max(0, done / this.total));
    const elapsed = (now - this.start) / 1000;
    const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : Number.NaN;
    const filled = Math.round(frac * this.width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(this.width - filled)}`;
    const line = `${this.label}${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${status} | ${formatDuration(elapsed)} < ${formatDuration(eta)}`;
    if (this.isTTY) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const cols = this.stream.columns ?? 120;
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

  finish(status: string): void {
    this.update(this.total, status, true);
    if (this.isTTY) this.stream.write('\n');
  }
}
