/**
 * Line charts for study reports: an SVG built by hand, rasterized to PNG with
 * sharp (librsvg), written atomically. Linear or log axes; one line per series.
 * (The approach of bench/lib/chart.ts, with linear axes for time.)
 */
import { writeFileAtomic } from '../io/atomic.js';

export interface ChartSeries {
  readonly label: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** SVG stroke-dasharray for a dashed line. */
  readonly dash?: string;
}

export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly xScale: 'linear' | 'log';
  readonly yScale: 'linear' | 'log';
  readonly series: readonly ChartSeries[];
  /** x tick positions (default: chosen from the range). */
  readonly xTicks?: readonly number[];
  /** Horizontal reference lines (e.g. a metric's real-vs-real floor). */
  readonly hlines?: readonly { readonly y: number; readonly label: string }[];
}

/** A qualitative palette (Tableau 10). */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const DASHES = [undefined, '6 4', '2 3', '8 3 2 3'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function usable(scale: 'linear' | 'log', v: number): boolean {
  return Number.isFinite(v) && (scale === 'linear' || v > 0);
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

/** Tick positions: powers of ten (log) or 1-2-5 steps (linear). */
function ticks(scale: 'linear' | 'log', lo: number, hi: number): number[] {
  if (scale === 'log') {
    // Decades; within a narrow range also 2 and 5 (then every digit) times a power of ten.
    for (const mantissas of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
      const out: number[] = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const k of mantissas) out.push(Number((k * 10 ** e).toPrecision(6)));
      }
      const inside = out.filter((t) => t >= lo && t <= hi);
      if (inside.length >= 3 || (mantissas.length === 9 && inside.length >= 2)) return inside;
    }
    // A range narrower than one digit step (e.g. losses 0.990..0.995): evenly spaced ticks.
    return ticks('linear', lo, hi);
  }
  const span = hi - lo || 1;
  const raw = span / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function range(scale: 'linear' | 'log', values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (scale === 'log') {
    if (lo === hi) return [lo / 2, hi * 2];
    const pad = (Math.log10(hi) - Math.log10(lo)) * 0.05;
    return [lo / 10 ** pad, hi * 10 ** pad];
  }
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.5 || 1;
    hi += Math.abs(hi) * 0.5 || 1;
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

/** The chart as SVG text (exported for tests). */
export function chartSvg(spec: ChartSpec, width = 900, height = 480): string {
  const legendW = 320;
  const m = { l: 72, r: 16 + legendW, t: 36, b: 50 };
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const series = spec.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => usable(spec.xScale, x) && usable(spec.yScale, y)) }));
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = [...series.flatMap((s) => s.points.map(([, y]) => y)), ...(spec.hlines ?? []).map((l) => l.y).filter((y) => usable(spec.yScale, y))];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="${m.l + pw / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`,
  ];
  if (xs.length === 0 || ys.length === 0) {
    out.push(`<text x="${m.l + pw / 2}" y="${m.t + ph / 2}" text-anchor="middle" font-size="13">no data</text></svg>`);
    return out.join('\n');
  }
  const [x0, x1] = range(spec.xScale, xs);
  const [y0, y1] = range(spec.yScale, ys);
  const f = (scale: 'linear' | 'log', v: number) => (scale === 'log' ? Math.log10(v) : v);
  const sx = (x: number) => m.l + ((f(spec.xScale, x) - f(spec.xScale, x0)) / (f(spec.xScale, x1) - f(spec.xScale, x0))) * pw;
  const sy = (y: number) => m.t + ph - ((f(spec.yScale, y) - f(spec.yScale, y0)) / (f(spec.yScale, y1) - f(spec.yScale, y0))) * ph;
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="white" stroke="#444"/>`);
  for (const t of ticks(spec.yScale, y0, y1)) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(t)}" y2="${sy(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  for (const t of spec.xTicks ? spec.xTicks.filter((v) => v >= x0 && v <= x1) : ticks(spec.xScale, x0, x1)) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${sx(t)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${height - 12}" text-anchor="middle" font-size="12">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(16,${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(spec.yLabel)}</text>`);
  out.push(`<clipPath id="plot"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath><g clip-path="url(#plot)">`);
  for (const l of spec.hlines ?? []) {
    if (!usable(spec.yScale, l.y)) continue;
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(l.y)}" y2="${sy(l.y)}" stroke="#000" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${m.l + 4}" y="${sy(l.y) - 4}" font-size="10" fill="#333">${esc(l.label)}</text>`);
  }
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const color = PALETTE[i % PALETTE.length]!;
    const dash = s.dash ?? DASHES[Math.floor(i / PALETTE.length) % DASHES.length];
    const d = s.points.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    if (s.points.length <= 60) for (const [x, y] of s.points) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.6" fill="${color}"/>`);
  });
  out.push('</g>');
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = s.dash ?? DASHES[Math.floor(i / PALETTE.length) % DASHES.length];
    const lx = width - legendW + 8;
    const y = m.t + 10 + i * 18;
    out.push(`<line x1="${lx}" x2="${lx + 30}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    out.push(`<text x="${lx + 36}" y="${y + 4}" font-size="11">${esc(s.label.length > 40 ? `${s.label.slice(0, 39)}…` : s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Renders the chart to a PNG file (atomic write). The legend grows the image when there are many series. */
export async function writeChartPng(path: string, spec: ChartSpec): Promise<void> {
  const { default: sharp } = await import('sharp');
  const height = Math.max(480, 36 + 10 + spec.series.length * 18 + 20);
  const png = await sharp(Buffer.from(chartSvg(spec, 900, height))).png().toBuffer();
  writeFileAtomic(path, png);
}
