import { chartJsUmdSource, chartScripts, escapeHtml } from '../report/html.js';
import { formatSI } from '../io.js';
import type { RunSummary, SweepManifest } from './layout.js';

/** One run as the sweep's report and status see it, wherever it was read from (the queue or the run root). */
export interface SweepRunRecord {
  id: string;
  axes: Record<string, unknown>;
  /** waiting / active / delayed (queue), completed, failed, partial (some epochs done), pending (nothing yet). */
  state: string;
  summary: RunSummary;
  /** Who trains it now (queue, active runs). */
  worker?: string;
  /** Epoch in progress (queue, active runs), for status. */
  epoch?: number;
  etaSeconds?: number;
  attemptsMade?: number;
  failedReason?: string;
}

/** The axis that repeats a configuration: the report averages over it. */
export const SEED_KEY = 'seed';

/** A table row: one configuration (the axes other than seed), its runs over seeds. */
export interface ReportRow {
  axes: Record<string, unknown>;
  runs: SweepRunRecord[];
  completed: number;
  failed: number;
  /** Mean and sample standard deviation (n - 1) of the final top-1 error over completed runs, as fractions. */
  meanError: number | null;
  stdError: number | null;
  params: number | null;
  secondsPerEpoch: number | null;
  /** Mean test top-1 error by epoch over the completed runs, for the curves. */
  meanCurve: number[];
}

export function formatAxisValue(value: unknown): string {
  // A run that does not set an axis (an included run) has the base's value there.
  if (value === undefined || value === null) return '-';
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.values(value).map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(' ');
  }
  return Array.isArray(value) ? value.join(', ') : String(value);
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function sampleStd(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((sum, x) => sum + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Groups runs by their axes other than seed, in the grid's order. */
export function reportRows(manifest: SweepManifest, records: readonly SweepRunRecord[]): ReportRow[] {
  const keys = manifest.axisKeys.filter((k) => k !== SEED_KEY);
  const groups = new Map<string, SweepRunRecord[]>();
  for (const record of records) {
    const group = JSON.stringify(keys.map((k) => record.axes[k] ?? null));
    groups.set(group, [...(groups.get(group) ?? []), record]);
  }
  return [...groups.values()].map((runs) => {
    const done = runs.filter((r) => r.summary.status === 'completed' && r.summary.testTop1Error !== null);
    const errors = done.map((r) => r.summary.testTop1Error!);
    const seconds = runs.map((r) => r.summary.secondsPerEpoch).filter((s): s is number => s !== null);
    const curveLength = Math.min(...done.map((r) => r.summary.epochErrors.length));
    const meanCurve = done.length > 0 ? Array.from({ length: curveLength }, (_, i) => mean(done.map((r) => r.summary.epochErrors[i]!))) : [];
    return {
      axes: Object.fromEntries(keys.map((k) => [k, runs[0]!.axes[k]])),
      runs,
      completed: done.length,
      failed: runs.filter((r) => r.summary.status === 'failed' || r.state === 'failed').length,
      meanError: errors.length > 0 ? mean(errors) : null,
      stdError: sampleStd(errors),
      params: runs.map((r) => r.summary.params).find((p) => p !== null) ?? null,
      secondsPerEpoch: seconds.length > 0 ? mean(seconds) : null,
      meanCurve,
    };
  });
}

const pct = (fraction: number) => (100 * fraction).toFixed(2);

export function formatError(row: ReportRow): string {
  if (row.meanError === null) return '-';
  return row.stdError === null ? pct(row.meanError) : `${pct(row.meanError)} ± ${pct(row.stdError)}`;
}

function runsCell(row: ReportRow): string {
  return `${row.completed}/${row.runs.length}${row.failed > 0 ? ` (${row.failed} failed)` : ''}`;
}

export const REPORT_COLUMNS = ['top-1 error (%)', 'runs', 'params', 'time / epoch (s)'];

/** The table's cells, shared by the Markdown and the HTML: axis values, then the columns above. */
export function tableCells(manifest: SweepManifest, rows: readonly ReportRow[]): { header: string[]; body: string[][] } {
  const keys = manifest.axisKeys.filter((k) => k !== SEED_KEY);
  return {
    header: [...keys, ...REPORT_COLUMNS],
    body: rows.map((row) => [
      ...keys.map((k) => formatAxisValue(row.axes[k])),
      formatError(row),
      runsCell(row),
      row.params === null ? '-' : formatSI(row.params),
      row.secondsPerEpoch === null ? '-' : row.secondsPerEpoch.toFixed(1),
    ]),
  };
}

const escapeMarkdown = (cell: string) => cell.replace(/\|/g, '\\|');

/** The paper-style table: mean ± std over seeds of the final top-1 error, parameters, training time per epoch. */
export function renderReportMarkdown(manifest: SweepManifest, records: readonly SweepRunRecord[]): string {
  const rows = reportRows(manifest, records);
  const { header, body } = tableCells(manifest, rows);
  const seeds = manifest.axisKeys.includes(SEED_KEY) ? 'mean ± std over seeds' : 'one run each';
  const lines = [
    `# Sweep ${manifest.name}`,
    '',
    ...(manifest.description ? [manifest.description, ''] : []),
    `${records.filter((r) => r.summary.status === 'completed').length} of ${records.length} runs completed; top-1 error: final test error, ${seeds}; time / epoch: training seconds of an epoch (evaluation excluded).`,
    '',
    `| ${header.map(escapeMarkdown).join(' | ')} |`,
    `|${header.map((_, i) => (i < header.length - REPORT_COLUMNS.length ? ' --- |' : ' ---: |')).join('')}`,
    ...body.map((cells) => `| ${cells.map(escapeMarkdown).join(' | ')} |`),
    '',
  ];
  return lines.join('\n');
}


const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** chart.js configs (plain JSON): final error per configuration (bars, each seed a point) and mean error by epoch. */
export function sweepCharts(manifest: SweepManifest, rows: readonly ReportRow[]): { id: string; config: Record<string, unknown> }[] {
  const keys = manifest.axisKeys.filter((k) => k !== SEED_KEY);
  const labels = rows.map((row) => keys.map((k) => formatAxisValue(row.axes[k])).join(' / ') || manifest.name);
  const maxEpochs = Math.max(0, ...rows.map((r) => r.meanCurve.length));
  const options = (title: string, x: string, y: string) => ({
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { title: { display: true, text: title }, legend: { position: 'bottom' } },
    scales: { x: { title: { display: true, text: x } }, y: { title: { display: true, text: y } } },
  });
  return [
    {
      id: 'chart-final-error',
      config: {
        type: 'bar',
        data: {
          labels,
          datasets: [
            // chart.js draws lower `order` on top: each run's point over its configuration's bar.
            { type: 'bar', order: 1, label: 'mean top-1 error (%)', data: rows.map((r) => (r.meanError === null ? null : 100 * r.meanError)), backgroundColor: '#9ecae1' },
            {
              type: 'scatter',
              order: 0,
              label: 'runs',
              data: rows.flatMap((r, i) =>
                r.runs.filter((run) => run.summary.testTop1Error !== null).map((run) => ({ x: labels[i], y: 100 * run.summary.testTop1Error! })),
              ),
              backgroundColor: '#d62728',
              pointRadius: 3,
            },
          ],
        },
        options: options('Final test top-1 error', 'configuration', 'top-1 error (%)'),
      },
    },
    {
      id: 'chart-error-curves',
      config: {
        type: 'line',
        data: {
          labels: Array.from({ length: maxEpochs }, (_, i) => i + 1),
          datasets: rows.map((row, i) => ({
            label: labels[i],
            data: row.meanCurve.map((e) => 100 * e),
            borderColor: PALETTE[i % PALETTE.length],
            backgroundColor: PALETTE[i % PALETTE.length],
            pointRadius: 2,
            tension: 0,
          })),
        },
        options: options('Test top-1 error by epoch (mean over completed runs)', 'epoch', 'top-1 error (%)'),
      },
    },
  ];
}

/** The sweep's report.html: the table, the charts and every run, self-contained (chart.js inlined, as in a run's report). */
export function renderReportHtml(manifest: SweepManifest, records: readonly SweepRunRecord[], chartJs: string = chartJsUmdSource()): string {
  const rows = reportRows(manifest, records);
  const { header, body } = tableCells(manifest, rows);
  const charts = sweepCharts(manifest, rows);
  const table = `<table id="sweep-table" class="numbers"><thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>
<tbody>${body.map((cells) => `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n')}</tbody></table>`;
  const runRows = records.map((r) =>
    [r.id, r.state, `${r.summary.epochsDone}/${r.summary.totalEpochs ?? '?'}`, r.summary.testTop1Error === null ? '-' : pct(r.summary.testTop1Error), r.summary.secondsPerEpoch?.toFixed(1) ?? '-', r.summary.failure?.message ?? r.failedReason ?? '']
      .map((c) => `<td>${escapeHtml(c)}</td>`)
      .join(''),
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wrn sweep ${escapeHtml(manifest.name)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1400px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }
.chart { position: relative; height: 360px; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; }
#sweep-runs td:first-child, #sweep-runs td:nth-child(2), #sweep-runs td:last-child { text-align: left; }
</style>
</head>
<body>
<h1>Sweep ${escapeHtml(manifest.name)}</h1>
${manifest.description ? `<p>${escapeHtml(manifest.description)}</p>` : ''}
<p>${records.filter((r) => r.summary.status === 'completed').length} of ${records.length} runs completed. Grid: <code>${escapeHtml(manifest.source)}</code>.</p>
<h2>Results</h2>
${table}
<h2>Charts</h2>
<div class="charts">
${charts.map((c) => `<div class="chart"><canvas id="${c.id}"></canvas></div>`).join('\n')}
</div>
<h2>Runs</h2>
<table id="sweep-runs" class="numbers"><thead><tr><th>run</th><th>state</th><th>epochs</th><th>top-1 error (%)</th><th>time / epoch (s)</th><th>failure</th></tr></thead>
<tbody>${runRows.map((r) => `<tr>${r}</tr>`).join('\n')}</tbody></table>
${chartScripts(chartJs, charts)}
</body>
</html>
`;
}
