import type { EpochMetrics } from './run-data.js';

/**
 * A chart.js configuration that is plain JSON (no callbacks), so the very same object is drawn by the browser in
 * report.html and by Node into curves.png.
 */
export interface ChartSpec {
  id: string;
  title: string;
  config: {
    type: 'line';
    data: { labels: number[]; datasets: { label: string; data: number[]; borderColor: string; backgroundColor: string; stepped?: 'after' }[] };
    options: Record<string, unknown>;
  };
}

const COLORS = { train: '#1f77b4', test: '#d62728', top5: '#ff7f0e', lr: '#2ca02c' };

function series(label: string, data: number[], color: string) {
  return { label, data, borderColor: color, backgroundColor: color, pointRadius: 2, borderWidth: 2, tension: 0 };
}

function lineOptions(title: string, yTitle: string, yType: 'linear' | 'logarithmic') {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { title: { display: true, text: title, font: { size: 15 } }, legend: { position: 'bottom' } },
    scales: {
      x: { title: { display: true, text: 'epoch' } },
      y: { type: yType, title: { display: true, text: yTitle } },
    },
  };
}

/** Training curves by epoch: loss, error (%) and learning rate. Error is 100 * (1 - accuracy), as in the papers. */
export function curveCharts(epochs: readonly EpochMetrics[]): ChartSpec[] {
  const labels = epochs.map((e) => e.epoch);
  const lrs = epochs.map((e) => e.lr);
  const errorSets = [
    series('train error', epochs.map((e) => 100 * (1 - e.trainAcc)), COLORS.train),
    series('test top-1 error', epochs.map((e) => 100 * e.testTop1Error), COLORS.test),
  ];
  if (epochs.every((e) => typeof e.testTop5Error === 'number')) {
    errorSets.push(series('test top-5 error', epochs.map((e) => 100 * e.testTop5Error), COLORS.top5));
  }
  return [
    {
      id: 'chart-loss',
      title: 'Loss',
      config: {
        type: 'line',
        data: {
          labels,
          datasets: [
            series('train loss', epochs.map((e) => e.trainLoss), COLORS.train),
            series('test loss', epochs.map((e) => e.testLoss), COLORS.test),
          ],
        },
        options: lineOptions('Loss', 'cross-entropy', 'linear'),
      },
    },
    {
      id: 'chart-error',
      title: 'Error (%)',
      config: { type: 'line', data: { labels, datasets: errorSets }, options: lineOptions('Error (%)', 'error (%)', 'linear') },
    },
    {
      id: 'chart-lr',
      title: 'Learning rate',
      config: {
        type: 'line',
        // Stepped 'after': the rate of epoch e holds for the whole of epoch e, then drops.
        data: { labels, datasets: [{ ...series('learning rate', lrs, COLORS.lr), stepped: 'after' }] },
        // A step schedule spans decades (0.1 -> 0.0008), which only a log axis shows.
        options: lineOptions('Learning rate', 'lr', lrs.length > 0 && lrs.every((lr) => lr > 0) ? 'logarithmic' : 'linear'),
      },
    },
  ];
}
