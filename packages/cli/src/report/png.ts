import { createCanvas } from '@napi-rs/canvas';
import { Chart, registerables } from 'chart.js';
import type { ChartSpec } from './charts.js';

let registered = false;

/**
 * Draws the report's charts side by side into one PNG with chart.js on @napi-rs/canvas (Skia), so a run's curves can
 * be looked at, or pasted somewhere, without a browser.
 */
export function renderCurvesPng(charts: readonly ChartSpec[], panel = { width: 600, height: 400 }): Buffer {
  if (!registered) {
    Chart.register(...registerables);
    registered = true;
  }
  const sheet = createCanvas(panel.width * charts.length, panel.height);
  const sheetContext = sheet.getContext('2d');
  sheetContext.fillStyle = '#ffffff';
  sheetContext.fillRect(0, 0, sheet.width, sheet.height);
  charts.forEach((spec, index) => {
    const canvas = createCanvas(panel.width, panel.height);
    const config = structuredClone(spec.config) as ChartSpec['config'];
    // Node has no layout engine: size comes from the canvas, and nothing animates.
    config.options = { ...config.options, responsive: false, animation: false, devicePixelRatio: 1 };
    const chart = new Chart(canvas as unknown as HTMLCanvasElement, config as never);
    sheetContext.drawImage(canvas, index * panel.width, 0);
    chart.destroy();
  });
  return sheet.toBuffer('image/png');
}
