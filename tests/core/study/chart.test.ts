import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { chartSvg, writeChartPng, type ChartSpec } from '../../../src/core/study/chart.js';

const spec = (over: Partial<ChartSpec>): ChartSpec => ({ title: 'T', xLabel: 'x', yLabel: 'y', xScale: 'linear', yScale: 'log', series: [], ...over });
const tickLabels = (svg: string): string[] => [...svg.matchAll(/text-anchor="end" font-size="11">([^<]+)</g)].map((m) => m[1]!);

describe('study charts', () => {
  it('log axes: decades, then 1-2-5, then even steps for ranges narrower than a digit', () => {
    expect(tickLabels(chartSvg(spec({ series: [{ label: 'a', points: [[1, 0.01], [2, 100]] }] })))).toEqual(['0.01', '0.1', '1', '10', '100']);
    expect(tickLabels(chartSvg(spec({ series: [{ label: 'a', points: [[1, 1.5], [2, 9]] }] })))).toEqual(['2', '3', '4', '5', '6', '7', '8', '9']);
    const narrow = tickLabels(chartSvg(spec({ series: [{ label: 'a', points: [[1, 0.9902], [2, 0.9942]] }] })));
    expect(narrow.length).toBeGreaterThanOrEqual(3);
    expect(narrow.every((t) => Number(t) > 0.98 && Number(t) < 1)).toBe(true);
  });

  it('skips points a log axis cannot show, draws one path per series, escapes labels', () => {
    const svg = chartSvg(
      spec({
        series: [
          { label: 'a<b', points: [[1, 1], [2, 0], [3, Number.NaN], [4, 2]] },
          { label: 'c', points: [[1, 3], [2, 4]] },
        ],
        hlines: [{ y: 0.5, label: 'floor' }],
      }),
    );
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain('a&lt;b');
    expect(svg).toContain('floor');
    expect(chartSvg(spec({ series: [{ label: 'a', points: [[1, -1]] }] }))).toContain('no data');
  });

  it('writes a PNG', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'difflab-chart-')), 'c.png');
    await writeChartPng(file, spec({ xScale: 'log', series: [{ label: 'a', points: [[1, 1], [10, 2]] }] }));
    const m = await sharp(file).metadata();
    expect([m.format, m.width, m.height]).toEqual(['png', 900, 480]);
  });
});
