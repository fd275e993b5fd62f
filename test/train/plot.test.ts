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

test('a long title wraps inside its panel; a fixed y range clips the curves to the plot area', () => {
  const title = 'small vs small-moe with 64 experts at capacity factor 2.0 and 2.5: validation loss';
  const panel: Panel = {
    title,
    yLabel: 'nats',
    xLabel: 'tokens',
    series: [line('a', '#000', 1)],
    yRange: [4, 4.6],
  };
  const svg = renderSvg([panel, { ...panel, title: 'short' }], 2);
  const lines = [...svg.matchAll(/font-weight="bold">([^<]+)</g)].map((m) => m[1]!);
  assert.equal(lines.slice(0, -1).join(' '), title, 'the title is all there, over several lines');
  assert.ok(lines.length >= 3);
  for (const l of lines) assert.ok(74 + 8.6 * l.length <= 540, `title line '${l}' overflows its panel`);
  // Both panels of the row start their plot areas at the same height, below the taller header.
  const tops = [...svg.matchAll(/<rect x="74" y="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(new Set(tops).size, 1);
  // The y ticks stay within the fixed range, and the curve is drawn inside the clip of the plot area.
  const yTicks = [...svg.matchAll(/text-anchor="end" dy="4">([^<]+)</g)].map((m) => Number(m[1]));
  assert.ok(yTicks.length > 0 && yTicks.every((v) => v >= 4 && v <= 4.6), `y ticks ${yTicks}`);
  assert.match(svg, /<g clip-path="url\(#plot0\)"><polyline/);
});
