import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { type Panel, renderSvg } from '../train/plot.js';
import { METRICS_FILE, type StepRecord } from '../train/trainer.js';

const HELP = `usage: glam plot RUN_DIR [--out FILE.svg]

Renders the training curves of RUN_DIR/metrics.jsonl (loss and validation loss,
loss parts, learning rate, expert load balance and dropped fraction) to an SVG
file (default RUN_DIR/curves.svg).`;

function readMetrics(file: string): StepRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`cannot read ${file}: is this a training run directory?`);
  }
  const records: StepRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      throw new Error(`${file}:${i + 1}: not valid JSON`);
    }
    const r = rec as Partial<StepRecord>;
    if (typeof r.step === 'number' && typeof r.loss === 'number') records.push(r as StepRecord);
  });
  if (records.length === 0) throw new Error(`${file}: no step records`);
  return records;
}

export function metricsPanels(records: StepRecord[]): Panel[] {
  const pts = (f: (r: StepRecord) => number | undefined): [number, number][] =>
    records.filter((r) => f(r) !== undefined).map((r) => [r.step, f(r)!]);
  const panels: Panel[] = [
    {
      title: 'loss',
      series: [
        { label: 'train loss', color: '#1f77b4', points: pts((r) => r.loss) },
        { label: 'validation loss', color: '#d62728', points: pts((r) => r.val_loss) },
      ],
    },
    {
      title: 'loss parts',
      logY: true,
      series: [
        { label: 'lm', color: '#1f77b4', points: pts((r) => r.lm_loss) },
        { label: 'aux', color: '#2ca02c', points: pts((r) => r.aux_loss) },
        { label: 'z', color: '#9467bd', points: pts((r) => r.z_loss) },
      ],
    },
    { title: 'learning rate', series: [{ label: 'lr', color: '#ff7f0e', points: pts((r) => r.lr) }] },
  ];
  if (records.some((r) => r.expert_load.length > 0)) {
    panels.push({
      title: 'expert load and drops',
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
    options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const dir = positionals[0];
  if (dir === undefined) throw new Error(`plot: missing RUN_DIR\n\n${HELP}`);
  const records = readMetrics(path.join(dir, METRICS_FILE));
  const out = values.out ?? path.join(dir, 'curves.svg');
  writeFileSync(out, renderSvg(metricsPanels(records)));
  console.log(`wrote ${out} (${records.length} steps)`);
}
