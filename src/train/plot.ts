/**
 * Training curves as a self-contained SVG: one panel per series group, drawn
 * from the records of metrics.jsonl. No plotting dependency: a few polylines and axes.
 */
import { readHead } from '../util/files.js';

/** Written into every SVG glam plot makes, so it replaces only its own files. */
export const SVG_MARKER = '<!-- glam-moe training curves (glam plot) -->';

/** Whether `file` is an SVG written by renderSvg (its marker near the start). */
export function isOwnSvg(file: string): boolean {
  try {
    return readHead(file, 4096).includes(SVG_MARKER);
  } catch {
    return false;
  }
}

export interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

export interface Panel {
  title: string;
  series: Series[];
  logY?: boolean;
}

const PANEL_W = 520;
const PANEL_H = 240;
const PAD = { left: 62, right: 16, top: 30, bottom: 36 };

function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

function renderPanel(panel: Panel, x0: number, y0: number): string {
  const pts = panel.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const out: string[] = [`<g transform="translate(${x0},${y0})">`];
  out.push(`<text x="${PAD.left}" y="18" font-size="14" font-weight="bold">${escapeXml(panel.title)}</text>`);
  const w = PANEL_W - PAD.left - PAD.right;
  const h = PANEL_H - PAD.top - PAD.bottom;
  out.push(`<rect x="${PAD.left}" y="${PAD.top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  if (pts.length === 0) {
    out.push(`<text x="${PAD.left + 10}" y="${PAD.top + 20}" font-size="12" fill="#666">no data</text></g>`);
    return out.join('');
  }
  const ty = (v: number): number => (panel.logY ? Math.log10(Math.max(v, 1e-12)) : v);
  // Loops, not Math.min(...xs): a spread of a long run's points overflows the call stack.
  let xlo = Number.POSITIVE_INFINITY;
  let xhi = Number.NEGATIVE_INFINITY;
  let ylo = Number.POSITIVE_INFINITY;
  let yhi = Number.NEGATIVE_INFINITY;
  for (const [x, y] of pts) {
    xlo = Math.min(xlo, x);
    xhi = Math.max(xhi, x);
    ylo = Math.min(ylo, ty(y));
    yhi = Math.max(yhi, ty(y));
  }
  if (xhi === xlo) xhi = xlo + 1;
  if (yhi === ylo) {
    // A constant series (e.g. the learning rate before decay): a band around it, not around 0.
    const half = Math.abs(yhi) > 0 ? Math.abs(yhi) * 0.5 : 0.5;
    yhi += half;
    ylo -= half;
  }
  const margin = (yhi - ylo) * 0.05;
  ylo -= margin;
  yhi += margin;
  const sx = (x: number): number => PAD.left + ((x - xlo) / (xhi - xlo)) * w;
  const sy = (y: number): number => PAD.top + h - ((ty(y) - ylo) / (yhi - ylo)) * h;
  for (const t of niceTicks(xlo, xhi, 6)) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${PAD.top + h}" y2="${PAD.top + h + 4}" stroke="#999"/>`);
    out.push(`<text x="${x}" y="${PAD.top + h + 16}" font-size="10" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(ylo, yhi, 5)) {
    const y = (PAD.top + h - ((t - ylo) / (yhi - ylo)) * h).toFixed(1);
    out.push(`<line x1="${PAD.left}" x2="${PAD.left + w}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    const label = panel.logY ? fmt(10 ** t) : fmt(t);
    out.push(`<text x="${PAD.left - 4}" y="${y}" font-size="10" text-anchor="end" dy="3">${label}</text>`);
  }
  out.push(
    `<text x="${PAD.left + w / 2}" y="${PANEL_H - 4}" font-size="11" text-anchor="middle">step</text>`,
  );
  panel.series.forEach((s, i) => {
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (good.length > 0) {
      const d = good.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${d}"/>`);
      if (good.length === 1) {
        const [x, y] = good[0]!;
        out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
      }
    }
    const lx = PAD.left + w - 150;
    const ly = PAD.top + 16 + i * 16;
    out.push(
      `<line x1="${lx}" x2="${lx + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`,
    );
    out.push(`<text x="${lx + 20}" y="${ly}" font-size="11">${escapeXml(s.label)}</text>`);
  });
  out.push('</g>');
  return out.join('');
}

/** Render panels in a grid of `columns` columns. */
export function renderSvg(panels: Panel[], columns = 2): string {
  const rows = Math.ceil(panels.length / columns);
  const W = PANEL_W * Math.min(columns, panels.length);
  const H = PANEL_H * rows;
  const body = panels.map((p, i) =>
    renderPanel(p, (i % columns) * PANEL_W, Math.floor(i / columns) * PANEL_H),
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    SVG_MARKER,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    ...body,
    '</svg>\n',
  ].join('\n');
}
