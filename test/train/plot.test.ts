/** The SVG plots: tick labels that name their position, legends that stay inside their panel. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Panel, renderSvg } from '../../src/train/plot.js';

const line = (label: string, color: string, scale: number): Panel['series'][number] => ({
  label,
  color,
  points: [
    [0, 5 * scale],
    [1_500_000, 4 * scale],
  ],
});

test('tick labels of large values keep their second digit (1.5e6, not 2e6)', () => {
  const svg = renderSvg([
    { title: 'loss', yLabel: 'nats', xLabel: 'tokens', series: [line('a', '#000', 1)] },
  ]);
  const ticks = [...svg.matchAll(/text-anchor="middle">([^<]+)</g)].map((m) => m[1]);
  assert.ok(ticks.includes('1.5e6'), `x ticks: ${ticks.join(', ')}`);
  assert.ok(ticks.includes('1e6'), `x ticks: ${ticks.join(', ')}`);
  assert.ok(!ticks.includes('2e6'), `a tick labelled 2e6 on an axis ending at 1.5e6: ${ticks.join(', ')}`);
});

test('a legend too wide for one row wraps inside its panel, and the plot area moves down', () => {
  const labels = [
    'dense, seed 1',
    'MoE 16x1024, seed 1',
    'dense, seed 2',
    'MoE 16x1024, seed 2',
    'dense, d_ff 4096',
  ];
  const panel: Panel = {
    title: 'validation loss',
    yLabel: 'nats',
    series: labels.map((l, i) => line(l, `#00000${i}`, 1 + i / 10)),
  };
  const wide = renderSvg([panel], 1);
  const narrow = renderSvg([{ ...panel, series: panel.series.slice(0, 1) }], 1);
  const width = Number(/width="(\d+)"/.exec(wide)![1]);
  for (const m of wide.matchAll(/<text x="([\d.]+)" y="([\d.]+)" font-size="12">([^<]+)</g)) {
    if (!labels.includes(m[3]!)) continue;
    const end = Number(m[1]) + 6.5 * m[3]!.length;
    assert.ok(end <= width, `legend '${m[3]}' ends at ${end}, beyond the panel's ${width}`);
  }
  const rows = new Set(
    [...wide.matchAll(/<line x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)" y2="\1" stroke="#00000/g)].map(
      (m) => m[1],
    ),
  );
  assert.ok(rows.size >= 2, 'the legend wraps onto a second row');
  const plotTop = (svg: string): number => Number(/<rect x="74" y="([\d.]+)"/.exec(svg)![1]);
  assert.ok(plotTop(wide) > plotTop(narrow), 'the plot area starts below the wrapped legend');
});
