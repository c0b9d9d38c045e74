// A small line chart on a canvas: enough for live curves, no charting library in the bundle.
export interface Series {
  label: string;
  color: string;
  points: Array<[number, number]>;
}

export function drawChart(canvas: HTMLCanvasElement, title: string, series: Series[], options: { yMin?: number; yMax?: number } = {}): void {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 360;
  const height = canvas.clientHeight || 180;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d')!;
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  g.font = '12px system-ui, sans-serif';
  g.fillStyle = '#222';
  g.fillText(title, 8, 14);
  const all = series.flatMap((s) => s.points);
  const pad = { left: 44, right: 10, top: 22, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  g.strokeStyle = '#bbb';
  g.strokeRect(pad.left, pad.top, plotW, plotH);
  if (all.length === 0) return;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs, xMin + 1);
  const yMin = options.yMin ?? Math.min(...ys);
  let yMax = options.yMax ?? Math.max(...ys);
  if (yMax - yMin < 1e-9) yMax = yMin + 1;
  const px = (x: number) => pad.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const py = (y: number) => pad.top + (1 - (y - yMin) / (yMax - yMin)) * plotH;
  g.fillStyle = '#555';
  g.fillText(yMax.toPrecision(3), 4, pad.top + 10);
  g.fillText(yMin.toPrecision(3), 4, pad.top + plotH);
  g.fillText(String(xMin), pad.left, height - 6);
  g.fillText(String(xMax), width - pad.right - 30, height - 6);
  series.forEach((s, i) => {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = 1.5;
    g.beginPath();
    s.points.forEach(([x, y], k) => (k === 0 ? g.moveTo(px(x), py(y)) : g.lineTo(px(x), py(y))));
    g.stroke();
    if (s.points.length === 1) g.fillRect(px(s.points[0]![0]) - 2, py(s.points[0]![1]) - 2, 4, 4);
    g.fillText(s.label, pad.left + 8 + i * 110, pad.top + 14);
  });
}
