import { join } from 'node:path';
import { writeFileAtomic } from '../fs.js';
import { curveCharts } from './charts.js';
import { renderReportHtml } from './html.js';
import { renderCurvesPng } from './png.js';
import { readRunData } from './run-data.js';

export interface ReportFiles {
  html: string;
  png: string;
  epochs: number;
}

/** Writes report.html and curves.png into the run directory (atomically) and returns their paths. */
export function writeReport(runDir: string): ReportFiles {
  const data = readRunData(runDir);
  const html = join(runDir, 'report.html');
  const png = join(runDir, 'curves.png');
  writeFileAtomic(html, renderReportHtml(data));
  writeFileAtomic(png, renderCurvesPng(curveCharts(data.epochs)));
  return { html, png, epochs: data.epochs.length };
}
