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
  /** SVG stroke-dasharray (e.g. '6 3'); solid when absent. */
  dash?: string;
}

/** One legend entry: a line sample and its label. */
export type LegendEntry = Pick<Series, 'label' | 'color' | 'dash'>;

export interface Panel {
  title: string;
  /** What the y axis measures (the axis label); "(log scale)" is added for logY. */
  yLabel: string;
  series: Series[];
  logY?: boolean;
  /** Log-scaled x axis, labelled at `xTicks` (default: the axis counts steps, integer ticks). */
  logX?: boolean;
  xTicks?: number[];
  /** Default 'step'. */
  xLabel?: string;
  /** The legend, when it is not one entry per series (e.g. colour for a run, line style for a seed). */
  legend?: LegendEntry[];
  /** A fixed y range (linear axes): what falls outside is clipped at the plot area's edge. */
  yRange?: [number, number];
}

const PANEL_W = 540;
/** Height of the plot area itself; the title and legend above it add what they need. */
const PLOT_H = 178;
/** The title and the legend sit above the plot area, so the legend never covers a curve. */
const PAD = { left: 74, right: 18, top: 52, bottom: 40 };
const LEGEND_ROW = 16;
const TITLE_ROW = 18;
/** Approximate advance of a character: 12px legend text and 15px bold titles. */
const LEGEND_CHAR = 6.5;
const TITLE_CHAR = 8.6;

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten (at least `minStep`). */
function niceTicks(lo: number, hi: number, count: number, minStep = 0): number[] {
  if (!(hi > lo)) return [lo];
  const raw = Math.max((hi - lo) / count, minStep);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(minStep, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9)) ?? raw);
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

/** Ticks of a log axis, as values: 1-2-5 steps within each decade on short ranges, whole decades on long ones. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const decades = hi - lo;
  const mantissas = decades <= 2.2 ? [1, 2, 5] : decades <= 5 ? [1] : [];
  if (mantissas.length === 0) {
    const every = Math.ceil(decades / 5);
    for (let e = Math.ceil(lo); e <= hi + 1e-9; e += every) ticks.push(10 ** e);
    return ticks;
  }
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of mantissas) {
      const v = m * 10 ** e;
      const l = Math.log10(v);
      if (l >= lo - 1e-9 && l <= hi + 1e-9) ticks.push(v);
    }
  }
  if (ticks.length < 2) return niceTicks(10 ** lo, 10 ** hi, 4).filter((v) => v > 0);
  return ticks;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  // Two significant digits at most: 1.5e6 stays 1.5e6 (a tick between 1e6 and 2e6), 1e6 stays 1e6.
  if (a >= 1e5 || a < 1e-3) return Number(v.toPrecision(2)).toExponential().replace('e+', 'e');
  return Number(v.toPrecision(3)).toString();
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/**
 * At most ~4 points per pixel column (the first, lowest, highest and last of the column, in
 * order): a long run's curve looks the same, spikes included, at a fraction of the size.
 */
function decimate(points: [number, number][], px: (x: number) => number): [number, number][] {
  if (points.length <= 4000) return points;
  const out: [number, number][] = [];
  let col = Number.NaN;
  let bucket: [number, number][] = [];
  const flush = (): void => {
    if (bucket.length === 0) return;
    let lo = bucket[0]!;
    let hi = bucket[0]!;
    for (const p of bucket) {
      if (p[1] < lo[1]) lo = p;
      if (p[1] > hi[1]) hi = p;
    }
    const keep = [bucket[0]!, lo, hi, bucket[bucket.length - 1]!].sort((a, b) => a[0] - b[0]);
    for (const p of keep) if (out[out.length - 1] !== p) out.push(p);
    bucket = [];
  };
  for (const p of points) {
    const c = Math.floor(px(p[0]));
    if (c !== col) {
      flush();
      col = c;
    }
    bucket.push(p);
  }
  flush();
  return out;
}

interface Header {
  titleLines: string[];
  legend: { entry: LegendEntry; x: number; y: number }[];
  /** y of the plot area's top edge. */
  top: number;
}

/** Wraps the title at the panel's width and the legend under it, row by row. */
function layoutHeader(panel: Panel): Header {
  const maxChars = Math.floor((PANEL_W - PAD.left - PAD.right) / TITLE_CHAR);
  const titleLines: string[] = [];
  for (const word of panel.title.split(' ')) {
    const last = titleLines.length - 1;
    if (last >= 0 && titleLines[last]!.length + 1 + word.length <= maxChars) titleLines[last] += ` ${word}`;
    else titleLines.push(word);
  }
  const entries =
    panel.legend ??
    panel.series.map((s) => {
      // A series a log axis cannot show (all zero, e.g. the aux loss of a dense model) says so.
      const hidden = panel.logY === true && s.points.length > 0 && !s.points.some(([, y]) => y > 0);
      return { ...s, label: hidden ? `${s.label} (0, not shown)` : s.label };
    });
  const firstRow = 36 + TITLE_ROW * (titleLines.length - 1);
  const legend: Header['legend'] = [];
  let lx = PAD.left;
  let row = 0;
  for (const entry of entries) {
    const width = 23 + LEGEND_CHAR * entry.label.length;
    if (lx > PAD.left && lx + width > PANEL_W - PAD.right) {
      lx = PAD.left;
      row++;
    }
    legend.push({ entry, x: lx, y: firstRow + LEGEND_ROW * row });
    lx += width + 18;
  }
  return { titleLines, legend, top: PAD.top + TITLE_ROW * (titleLines.length - 1) + LEGEND_ROW * row };
}

const dashAttr = (dash: string | undefined): string =>
  dash === undefined ? '' : ` stroke-dasharray="${dash}"`;

/** One panel at (x0, y0), its plot area starting `top` below y0 (the tallest header of its grid row). */
function renderPanel(panel: Panel, x0: number, y0: number, header: Header, top: number, id: number): string {
  const out: string[] = [`<g transform="translate(${x0},${y0})">`];
  for (const [i, line] of header.titleLines.entries()) {
    out.push(
      `<text x="${PAD.left}" y="${20 + TITLE_ROW * i}" font-size="15" font-weight="bold">${escapeXml(line)}</text>`,
    );
  }
  for (const { entry, x, y } of header.legend) {
    out.push(
      `<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${entry.color}" stroke-width="2.5"${dashAttr(entry.dash)}/>`,
    );
    out.push(`<text x="${x + 23}" y="${y + 4}" font-size="12">${escapeXml(entry.label)}</text>`);
  }
  const w = PANEL_W - PAD.left - PAD.right;
  const h = PLOT_H;
  const bottom = top + h + PAD.bottom;
  out.push(`<rect x="${PAD.left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  const yLabel = panel.logY ? `${panel.yLabel} (log scale)` : panel.yLabel;
  const ly = top + h / 2;
  out.push(
    `<text x="16" y="${ly}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${ly})">${escapeXml(yLabel)}</text>`,
  );
  out.push(
    `<text x="${PAD.left + w / 2}" y="${bottom - 6}" font-size="12" text-anchor="middle">${escapeXml(panel.xLabel ?? 'step')}</text>`,
  );
  const ty = (v: number): number => (panel.logY ? Math.log10(v) : v);
  const tx = (v: number): number => (panel.logX ? Math.log10(v) : v);
  const usable = ([x, y]: [number, number]): boolean =>
    Number.isFinite(x) && Number.isFinite(y) && (!panel.logY || y > 0) && (!panel.logX || x > 0);
  // Loops, not Math.min(...xs): a spread of a long run's points overflows the call stack.
  let xlo = Number.POSITIVE_INFINITY;
  let xhi = Number.NEGATIVE_INFINITY;
  let ylo = Number.POSITIVE_INFINITY;
  let yhi = Number.NEGATIVE_INFINITY;
  for (const s of panel.series) {
    for (const p of s.points) {
      if (!usable(p)) continue;
      xlo = Math.min(xlo, tx(p[0]));
      xhi = Math.max(xhi, tx(p[0]));
      ylo = Math.min(ylo, ty(p[1]));
      yhi = Math.max(yhi, ty(p[1]));
    }
  }
  if (panel.yRange !== undefined && !panel.logY) [ylo, yhi] = panel.yRange;
  if (!(xhi >= xlo)) {
    out.push(`<text x="${PAD.left + 10}" y="${top + 20}" font-size="12" fill="#666">no data</text></g>`);
    return out.join('');
  }
  if (xhi === xlo) xhi = xlo + 1;
  if (yhi === ylo) {
    // A constant series (e.g. the learning rate before decay): a band around it, not around 0.
    const half = panel.logY ? 0.5 : Math.abs(yhi) > 0 ? Math.abs(yhi) * 0.5 : 0.5;
    yhi += half;
    ylo -= half;
  }
  if (panel.yRange === undefined || panel.logY) {
    const margin = (yhi - ylo) * 0.05;
    ylo -= margin;
    yhi += margin;
  }
  const sx = (x: number): number => PAD.left + ((tx(x) - xlo) / (xhi - xlo)) * w;
  const syT = (t: number): number => top + h - ((t - ylo) / (yhi - ylo)) * h;
  // Steps are whole numbers: integer ticks only.
  const xticks = panel.xTicks ?? (panel.logX ? logTicks(xlo, xhi) : niceTicks(xlo, xhi, 6, 1));
  for (const t of xticks) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${top + h}" y2="${top + h + 4}" stroke="#999"/>`);
    out.push(`<text x="${x}" y="${top + h + 17}" font-size="11" text-anchor="middle">${fmt(t)}</text>`);
  }
  const yticks = panel.logY ? logTicks(ylo, yhi) : niceTicks(ylo, yhi, 5);
  for (const v of yticks) {
    const y = syT(panel.logY ? Math.log10(v) : v).toFixed(1);
    // Zero, where a linear axis crosses it, is the line that matters (e.g. a difference of losses).
    const grid = v === 0 && !panel.logY ? '#888' : '#eee';
    out.push(`<line x1="${PAD.left}" x2="${PAD.left + w}" y1="${y}" y2="${y}" stroke="${grid}"/>`);
    out.push(`<text x="${PAD.left - 5}" y="${y}" font-size="11" text-anchor="end" dy="4">${fmt(v)}</text>`);
  }
  out.push(
    `<clipPath id="plot${id}"><rect x="${PAD.left}" y="${top}" width="${w}" height="${h}"/></clipPath>`,
  );
  out.push(`<g clip-path="url(#plot${id})">`);
  for (const s of panel.series) {
    const good = decimate(s.points.filter(usable), sx);
    if (good.length === 0) continue;
    const d = good.map(([x, y]) => `${sx(x).toFixed(1)},${syT(ty(y)).toFixed(1)}`).join(' ');
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${dashAttr(s.dash)} points="${d}"/>`,
    );
    if (good.length === 1) {
      const [x, y] = good[0]!;
      out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${syT(ty(y)).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
  }
  out.push('</g></g>');
  return out.join('');
}

/** Render panels in a grid of `columns` columns; each grid row is as tall as its tallest header needs. */
export function renderSvg(panels: Panel[], columns = 2): string {
  const headers = panels.map(layoutHeader);
  const W = PANEL_W * Math.min(columns, panels.length);
  const body: string[] = [];
  let y0 = 0;
  for (let first = 0; first < panels.length; first += columns) {
    const row = panels.slice(first, first + columns);
    const top = Math.max(...headers.slice(first, first + columns).map((h) => h.top));
    for (const [i, p] of row.entries()) {
      body.push(renderPanel(p, i * PANEL_W, y0, headers[first + i]!, top, first + i));
    }
    y0 += top + PLOT_H + PAD.bottom;
  }
  const H = y0;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    SVG_MARKER,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    ...body,
    '</svg>\n',
  ].join('\n');
}
