import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { isOwnSvg, type Panel, renderSvg } from '../train/plot.js';
import { METRICS_FILE, type StepRecord } from '../train/trainer.js';
import { atomicWriteFileSync } from '../util/atomic.js';
import { lstatOrUndefined, readLines } from '../util/files.js';

const HELP = `usage: glam plot RUN_DIR [--out FILE.svg] [--force]

Renders the training curves of RUN_DIR/metrics.jsonl (loss and validation loss,
loss parts, learning rate, expert load balance and dropped fraction) to an SVG
file (default RUN_DIR/curves.svg). An existing file is replaced only when glam plot
wrote it (--force replaces any regular file; a symbolic link is never followed).`;

/** Refuse to replace a file glam plot did not write, unless forced; the directory must exist. */
function checkOutput(out: string, force: boolean): void {
  const dir = path.dirname(path.resolve(out));
  if (!lstatOrUndefined(dir)?.isDirectory())
    throw new Error(`cannot write ${out}: the directory ${path.dirname(out)} does not exist`);
  const st = lstatOrUndefined(out);
  if (st === undefined || force || (st.isFile() && isOwnSvg(out))) return;
  if (st.isFile())
    throw new Error(
      `${out} exists and was not written by glam plot; pass --force to replace it, or another --out`,
    );
}

/** The fields of a metrics record the plot uses (a long run's records are not all kept whole). */
type PlotRecord = Pick<
  StepRecord,
  | 'step'
  | 'loss'
  | 'lm_loss'
  | 'aux_loss'
  | 'z_loss'
  | 'lr'
  | 'val_loss'
  | 'load_balance'
  | 'dropped_fraction'
> & { experts: boolean };

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/**
 * Step records of metrics.jsonl, read line by line. A last line cut short (a run killed while
 * writing it) is skipped with a note; any other line that is not JSON is an error naming it.
 * Fields a record lacks are simply not plotted.
 */
function readMetrics(file: string, note: (m: string) => void): PlotRecord[] {
  const records: PlotRecord[] = [];
  for (const { line, number, partial } of readLines(file)) {
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      if (partial) {
        note(`${file}:${number}: skipped the last line, cut short (the run was killed while writing it)`);
        break;
      }
      throw new Error(`${file}:${number}: not valid JSON`);
    }
    if (typeof rec !== 'object' || rec === null) continue;
    const r = rec as Record<string, unknown>;
    const step = num(r.step);
    const loss = num(r.loss);
    if (step === undefined || loss === undefined) continue;
    records.push({
      step,
      loss,
      lm_loss: num(r.lm_loss)!,
      aux_loss: num(r.aux_loss)!,
      z_loss: num(r.z_loss)!,
      lr: num(r.lr)!,
      val_loss: num(r.val_loss),
      load_balance: num(r.load_balance)!,
      dropped_fraction: num(r.dropped_fraction)!,
      experts: Array.isArray(r.expert_load) && r.expert_load.length > 0,
    });
  }
  if (records.length === 0) throw new Error(`${file}: no step records`);
  return records;
}

export function metricsPanels(records: PlotRecord[]): Panel[] {
  const pts = (f: (r: PlotRecord) => number | undefined): [number, number][] =>
    records.filter((r) => f(r) !== undefined).map((r) => [r.step, f(r)!]);
  const panels: Panel[] = [
    {
      title: 'loss',
      yLabel: 'loss (nats per token)',
      series: [
        { label: 'train loss', color: '#1f77b4', points: pts((r) => r.loss) },
        { label: 'validation loss', color: '#d62728', points: pts((r) => r.val_loss) },
      ],
    },
    {
      title: 'loss parts (unweighted)',
      yLabel: 'loss',
      logY: true,
      series: [
        { label: 'lm', color: '#1f77b4', points: pts((r) => r.lm_loss) },
        { label: 'aux', color: '#2ca02c', points: pts((r) => r.aux_loss) },
        { label: 'z', color: '#9467bd', points: pts((r) => r.z_loss) },
      ],
    },
    {
      title: 'learning rate',
      yLabel: 'learning rate',
      series: [{ label: 'lr', color: '#ff7f0e', points: pts((r) => r.lr) }],
    },
  ];
  if (records.some((r) => r.experts)) {
    panels.push({
      title: 'expert load and drops',
      yLabel: 'ratio / fraction',
      series: [
        { label: 'max/mean load', color: '#8c564b', points: pts((r) => r.load_balance) },
        { label: 'dropped fraction', color: '#e377c2', points: pts((r) => r.dropped_fraction) },
      ],
    });
  }
  return panels;
}

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const dir = positionals[0];
  if (dir === undefined) throw new Error(`plot: missing RUN_DIR\n\n${HELP}`);
  const metrics = path.join(dir, METRICS_FILE);
  if (lstatOrUndefined(metrics) === undefined)
    throw new Error(`${metrics} not found: is ${dir} a training run directory?`);
  const records = readMetrics(metrics, (m) => console.error(`note: ${m}`));
  const out = values.out ?? path.join(dir, 'curves.svg');
  checkOutput(out, values.force);
  atomicWriteFileSync(out, renderSvg(metricsPanels(records)));
  console.log(`wrote ${out} (${records.length} steps)`);
}
