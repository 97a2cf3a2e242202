// Tiny canvas charts for the console: a line with its latest value, and horizontal bars.
// Drawn at the device's pixel ratio so they stay sharp; no charting framework needed.

function prepare(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ratio = window.devicePixelRatio || 1;
  const { width, height } = canvas.getBoundingClientRect();
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  return ctx;
}

const SLOTS = 90;

export function lineChart(canvas: HTMLCanvasElement, values: number[], color: string, unit: string): void {
  const ctx = prepare(canvas);
  const { width, height } = canvas.getBoundingClientRect();
  const top = 6;
  const bottom = height - 16;
  const max = Math.max(1, ...values);
  ctx.strokeStyle = "#e5e7eb";
  ctx.beginPath();
  ctx.moveTo(0, bottom + 0.5);
  ctx.lineTo(width, bottom + 0.5);
  ctx.stroke();
  ctx.fillStyle = "#6b7280";
  ctx.fillText(`max ${format(max)}${unit}`, 4, height - 3);
  if (values.length === 0) {
    ctx.fillText("no data yet", width / 2 - 28, height / 2);
    return;
  }
  const step = width / (SLOTS - 1); // a fixed time axis: new points enter on the right
  const offset = SLOTS - values.length;
  const y = (v: number): number => bottom - (v / max) * (bottom - top);
  ctx.beginPath();
  const x = (i: number): number => (offset + i) * step;
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(x(values.length - 1), y(values[values.length - 1]), 3, 0, 2 * Math.PI);
  ctx.fill();
  ctx.beginPath();
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.lineTo(x(values.length - 1), bottom);
  ctx.lineTo(x(0), bottom);
  ctx.closePath();
  ctx.globalAlpha = 0.12;
  ctx.fillStyle = color;
  ctx.fill();
  ctx.globalAlpha = 1;
}

export function barChart(canvas: HTMLCanvasElement, bars: { label: string; value: number }[], color: string): void {
  const ctx = prepare(canvas);
  const { width, height } = canvas.getBoundingClientRect();
  if (bars.length === 0) {
    ctx.fillStyle = "#6b7280";
    ctx.fillText("no product mentioned yet", 8, height / 2);
    return;
  }
  const rows = bars.slice(0, 5);
  const row = Math.min(26, height / rows.length);
  const max = Math.max(1, ...rows.map((b) => b.value));
  const labelWidth = 90;
  rows.forEach((bar, i) => {
    const y = i * row;
    ctx.fillStyle = "#374151";
    ctx.fillText(bar.label.length > 12 ? `${bar.label.slice(0, 11)}…` : bar.label, 2, y + row / 2 + 4);
    ctx.fillStyle = color;
    const w = ((width - labelWidth - 30) * bar.value) / max;
    ctx.fillRect(labelWidth, y + row * 0.2, Math.max(1, w), row * 0.6);
    ctx.fillStyle = "#111827";
    ctx.fillText(format(bar.value), labelWidth + w + 4, y + row / 2 + 4);
  });
}

function format(value: number): string {
  return value >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
}
