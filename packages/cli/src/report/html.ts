import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { curveCharts } from './charts.js';
import type { EpochMetrics, RunData } from './run-data.js';

/**
 * The UMD build of chart.js, read from the installed package so the report carries its own copy and opens from
 * disk with no network. chart.js does not export the file by subpath, so it is found beside its main entry.
 */
export function chartJsUmdSource(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

export const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON inside <script> must not contain "</script" or "<!--"; escaping every "<" rules both out. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

/** Text inside <script> is raw: a literal "</script" in the library would end the element early. */
const scriptText = (source: string) => source.replace(/<\/script/gi, '<\\/script');

/**
 * The scripts that draw a page's charts offline: chart.js inlined, the chart specs as JSON (never as code), and the
 * few lines that render each into the canvas of its id and mark the body with how many were drawn (tests wait on it).
 */
export function chartScripts(chartJs: string, charts: readonly { id: string }[]): string {
  return `<script>${scriptText(chartJs)}</script>
<script type="application/json" id="wrn-report-data">${scriptJson({ charts })}</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById('wrn-report-data').textContent);
  data.charts.forEach(function (spec) { new Chart(document.getElementById(spec.id), spec.config); });
  document.body.setAttribute('data-charts-rendered', String(data.charts.length));
})();
</script>`;
}

export const formatPercent = (fraction: number) => `${(100 * fraction).toFixed(2)}%`;
export const formatLoss = (loss: number) => loss.toFixed(4);
export const formatLr = (lr: number) => lr.toPrecision(4);

function epochTable(epochs: readonly EpochMetrics[]): string {
  const head = ['epoch', 'lr', 'train loss', 'train error', 'test loss', 'test top-1 error', 'test top-5 error', 'images/s', 'seconds'];
  const rows = epochs.map((e) =>
    [
      String(e.epoch),
      formatLr(e.lr),
      formatLoss(e.trainLoss),
      formatPercent(1 - e.trainAcc),
      formatLoss(e.testLoss),
      formatPercent(e.testTop1Error),
      typeof e.testTop5Error === 'number' ? formatPercent(e.testTop5Error) : '-',
      e.imagesPerSec.toFixed(1),
      e.seconds.toFixed(1),
    ]
      .map((cell) => `<td>${escapeHtml(cell)}</td>`)
      .join(''),
  );
  return `<table id="epochs" class="numbers"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>
<tbody>${rows.map((r) => `<tr>${r}</tr>`).join('\n')}</tbody></table>`;
}

function confusionTable(confusion: NonNullable<RunData['confusion']>): string {
  const { matrix, classNames } = confusion;
  const max = Math.max(1, ...matrix.flat());
  const header = `<tr><th>true \\ predicted</th>${classNames.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}<th>accuracy</th></tr>`;
  const rows = matrix.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    const cells = row
      .map((count, j) => {
        // Shade by count so the diagonal and the common confusions stand out at a glance.
        const alpha = (count / max).toFixed(3);
        const color = i === j ? `rgba(31,119,180,${alpha})` : `rgba(214,39,40,${alpha})`;
        return `<td style="background:${color}">${count}</td>`;
      })
      .join('');
    const accuracy = total > 0 ? formatPercent((row[i] ?? 0) / total) : '-';
    return `<tr><th>${escapeHtml(classNames[i] ?? String(i))}</th>${cells}<td>${accuracy}</td></tr>`;
  });
  return `<table id="confusion" class="numbers">${header}\n${rows.join('\n')}</table>`;
}

function keyValueTable(id: string, record: Record<string, unknown>): string {
  const rows = Object.entries(record).map(
    ([key, value]) =>
      `<tr><th>${escapeHtml(key)}</th><td>${escapeHtml(typeof value === 'string' ? value : JSON.stringify(value))}</td></tr>`,
  );
  return `<table id="${id}" class="kv">${rows.join('\n')}</table>`;
}

function headline(data: RunData): string {
  const last = data.epochs.at(-1);
  if (!last) return '<p>No epoch has finished yet.</p>';
  const best = data.epochs.reduce((a, b) => (b.testTop1Error < a.testTop1Error ? b : a));
  const totalSeconds = data.epochs.reduce((sum, e) => sum + e.seconds, 0);
  return `<p id="headline">After epoch <b>${last.epoch}</b>: test top-1 error <b>${formatPercent(last.testTop1Error)}</b>
 (accuracy ${formatPercent(1 - last.testTop1Error)}); best top-1 error ${formatPercent(best.testTop1Error)} at epoch ${best.epoch};
 ${data.epochs.length} epochs in ${totalSeconds.toFixed(1)} s.</p>`;
}

/** The self-contained report.html of a run: curves, epoch table, confusion matrix, config and environment. */
export function renderReportHtml(data: RunData, chartJs: string = chartJsUmdSource()): string {
  const charts = curveCharts(data.epochs);
  const title = `wrn report: ${String(data.config.model ?? '')} ${String(data.config.dataset ?? '')}`.trim();
  const environment = data.environment ?? (data.config.environment as Record<string, unknown> | undefined);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1400px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 1rem; }
.chart { position: relative; height: 320px; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { text-align: left; background: #f4f4f4; }
pre { background: #f6f8fa; padding: 1rem; overflow: auto; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>Run directory: <code>${escapeHtml(data.runDir)}</code></p>
${headline(data)}
<h2>Curves</h2>
<div class="charts">
${charts.map((c) => `<div class="chart"><canvas id="${c.id}" aria-label="${escapeHtml(c.title)}"></canvas></div>`).join('\n')}
</div>
<h2>Epochs</h2>
${epochTable(data.epochs)}
<h2>Confusion matrix (final evaluation)</h2>
${data.confusion ? confusionTable(data.confusion) : '<p>No summary.json with a confusion matrix yet (the run has not finished).</p>'}
<h2>Config</h2>
<pre id="config">${escapeHtml(JSON.stringify(data.config, null, 2))}</pre>
<h2>Environment</h2>
${environment ? keyValueTable('environment', environment) : '<p>Not recorded.</p>'}
${chartScripts(chartJs, charts)}
</body>
</html>
`;
}
