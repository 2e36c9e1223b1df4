/**
 * A small log-log line chart: builds an SVG by hand and rasterizes it to PNG
 * with sharp (librsvg). Several panels side by side share one legend.
 */
import sharp from 'sharp';

export interface Series {
  readonly label: string;
  readonly color: string;
  /** SVG stroke-dasharray, e.g. '6 4'; undefined for a solid line. */
  readonly dash?: string;
  /** Marker shape at each point. */
  readonly marker?: 'circle' | 'square';
  /** [x, y] points; non-finite or non-positive values are skipped (log axes). */
  readonly points: ReadonlyArray<readonly [number, number]>;
}

export interface HLine {
  readonly y: number;
  readonly label: string;
  /** Optional shaded range [lo, hi] around the line. */
  readonly band?: readonly [number, number];
}

export interface Panel {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly hlines?: readonly HLine[];
  /** x tick positions (default: every distinct x of the data). */
  readonly xTicks?: readonly number[];
}

export interface LegendEntry {
  readonly label: string;
  readonly color: string;
  readonly dash?: string;
  readonly marker?: 'circle' | 'square';
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmtTick(v: number): string {
  const e = Math.round(Math.log10(v));
  if (Math.abs(e) <= 2) return String(Number(v.toPrecision(3)));
  return `1e${e}`;
}

function logRange(values: number[]): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  let a = Math.floor(Math.log10(lo));
  let b = Math.ceil(Math.log10(hi));
  if (a === b) {
    a -= 1;
    b += 1;
  }
  return [a, b];
}

function markerSvg(kind: 'circle' | 'square' | undefined, x: number, y: number, color: string): string {
  if (kind === 'square') return `<rect x="${x - 3}" y="${y - 3}" width="6" height="6" fill="white" stroke="${color}" stroke-width="1.5"/>`;
  return `<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`;
}

function panelSvg(p: Panel, ox: number, oy: number, w: number, h: number): string {
  const m = { l: 70, r: 15, t: 34, b: 48 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const pts = p.series.flatMap((s) => s.points.filter(([x, y]) => x > 0 && y > 0 && Number.isFinite(x) && Number.isFinite(y)));
  const ys = [
    ...pts.map(([, y]) => y),
    ...(p.hlines ?? []).flatMap((l) => [l.y, ...(l.band ?? [])]).filter((y) => y > 0 && Number.isFinite(y)),
  ];
  const xs = [...pts.map(([x]) => x), ...(p.xTicks ?? [])];
  const out: string[] = [];
  out.push(`<g transform="translate(${ox},${oy})">`);
  out.push(`<text x="${m.l + pw / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(p.title)}</text>`);
  if (xs.length === 0 || ys.length === 0) {
    out.push(`<text x="${m.l + pw / 2}" y="${m.t + ph / 2}" text-anchor="middle" font-size="13">no finite data</text></g>`);
    return out.join('\n');
  }
  const [x0, x1] = [Math.log10(Math.min(...xs)) - 0.05, Math.log10(Math.max(...xs)) + 0.05];
  const [y0, y1] = logRange(ys);
  const sx = (x: number): number => m.l + ((Math.log10(x) - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.t + ph - ((Math.log10(y) - y0) / (y1 - y0)) * ph;
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="white" stroke="#444"/>`);
  for (let e = y0; e <= y1; e++) {
    for (let k = 1; k < 10; k++) {
      const v = k * 10 ** e;
      if (Math.log10(v) > y1 + 1e-9) break;
      const y = sy(v);
      out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`);
      if (k === 1) out.push(`<text x="${m.l - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmtTick(v)}</text>`);
    }
  }
  const xticks = [...new Set(p.xTicks ?? xs)].sort((a, b) => a - b);
  for (const v of xticks) {
    const x = sx(v);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11">${v}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${h - 10}" text-anchor="middle" font-size="12">${esc(p.xLabel)}</text>`);
  out.push(
    `<text transform="translate(16,${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(p.yLabel)}</text>`,
  );
  out.push(`<clipPath id="c${ox}"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath>`);
  out.push(`<g clip-path="url(#c${ox})">`);
  for (const l of p.hlines ?? []) {
    if (!(l.y > 0 && Number.isFinite(l.y))) continue;
    const y = sy(l.y);
    if (l.band && l.band[0] > 0 && l.band[1] > 0 && Number.isFinite(l.band[0]) && Number.isFinite(l.band[1])) {
      const [top, bottom] = [sy(l.band[1]), sy(l.band[0])];
      out.push(`<rect x="${m.l}" y="${top}" width="${pw}" height="${Math.max(bottom - top, 1)}" fill="#000" fill-opacity="0.08"/>`);
    }
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#000" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${m.l + 4}" y="${y + 12}" font-size="10" fill="#333">${esc(l.label)}</text>`);
  }
  for (const s of p.series) {
    const good = s.points.filter(([x, y]) => x > 0 && y > 0 && Number.isFinite(x) && Number.isFinite(y));
    if (good.length === 0) continue;
    const d = good.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    for (const [x, y] of good) out.push(markerSvg(s.marker, sx(x), sy(y), s.color));
  }
  out.push('</g></g>');
  return out.join('\n');
}

/** Renders panels left to right with a legend column, and writes a PNG. */
export async function writeLogLogChart(
  path: string,
  panels: readonly Panel[],
  legend: readonly LegendEntry[],
  opts: { title?: string; panelWidth?: number; panelHeight?: number } = {},
): Promise<void> {
  const pw = opts.panelWidth ?? 520;
  const ph = opts.panelHeight ?? 420;
  const legendW = 230;
  const top = opts.title ? 30 : 0;
  const width = pw * panels.length + legendW;
  const height = Math.max(ph, legend.length * 18 + 50) + top;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  if (opts.title) parts.push(`<text x="${width / 2}" y="21" text-anchor="middle" font-size="16">${esc(opts.title)}</text>`);
  panels.forEach((p, i) => parts.push(panelSvg(p, i * pw, top, pw, ph)));
  const lx = pw * panels.length + 10;
  legend.forEach((e, i) => {
    const y = top + 40 + i * 18;
    parts.push(
      `<line x1="${lx}" x2="${lx + 34}" y1="${y}" y2="${y}" stroke="${e.color}" stroke-width="2"${e.dash ? ` stroke-dasharray="${e.dash}"` : ''}/>`,
    );
    parts.push(markerSvg(e.marker, lx + 17, y, e.color));
    parts.push(`<text x="${lx + 42}" y="${y + 4}" font-size="11">${esc(e.label)}</text>`);
  });
  parts.push('</svg>');
  await sharp(Buffer.from(parts.join('\n'))).png().toFile(path);
}
