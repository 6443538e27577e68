// The waveform of a take, drawn from Backline's peaks file (audiowaveform JSON, version 2:
// https://github.com/bbc/audiowaveform/blob/master/doc/DataFormat.md) with a playhead.

export type WaveformJson = {
  version: number;
  channels: number;
  sample_rate: number;
  samples_per_pixel: number;
  bits: number;
  length: number;
  /** Per pixel, per channel: min, max. */
  data: number[];
};

const WAVE = '#3b82f6';
const PLAYED = '#1d4ed8';
const PLAYHEAD = '#dc2626';

export async function fetchWaveform(url: string): Promise<WaveformJson> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`waveform: HTTP ${response.status} from ${url}`);
  const json = (await response.json()) as WaveformJson;
  checkWaveform(json);
  return json;
}

/** The file must say what it holds: `length` pixels of `channels` (min, max) pairs. */
export function checkWaveform(json: WaveformJson): void {
  if (json.version !== 1 && json.version !== 2) {
    throw new Error(`waveform: version ${json.version}?`);
  }
  const channels = json.channels ?? 1; // version 1 has no channels field: mono
  if (!Number.isInteger(json.length) || json.data.length !== json.length * 2 * channels) {
    throw new Error(
      `waveform: ${json.data.length} values for length ${json.length} × ${channels} channel(s) × 2`,
    );
  }
}

export class WaveformView {
  private json: WaveformJson | null = null;
  private durationSeconds = 0;

  constructor(private readonly canvas: HTMLCanvasElement) {}

  show(json: WaveformJson): void {
    this.json = json;
    this.durationSeconds = (json.length * json.samples_per_pixel) / json.sample_rate;
    // What was drawn, for the browser test and for anyone inspecting the page.
    const d = this.canvas.dataset;
    d.length = String(json.length);
    d.points = String(json.data.length / (2 * (json.channels ?? 1)));
    d.channels = String(json.channels ?? 1);
    d.samplesPerPixel = String(json.samples_per_pixel);
    d.bits = String(json.bits);
    this.draw(0);
  }

  /** Redraw with the playhead at `seconds`. */
  draw(seconds: number): void {
    const json = this.json;
    const canvas = this.canvas;
    const ctx = canvas.getContext('2d');
    if (!json || !ctx) return;
    const { width, height } = canvas;
    const channels = json.channels ?? 1;
    const full = json.bits === 8 ? 128 : 32768;
    const mid = height / 2;
    const played = this.durationSeconds > 0 ? Math.min(1, seconds / this.durationSeconds) : 0;
    const playheadX = played * width;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = '#f8fafc';
    ctx.fillRect(0, 0, width, height);
    // One column per canvas pixel: the widest peak of the waveform pixels it covers.
    let columns = 0;
    for (let x = 0; x < width; x++) {
      const from = Math.floor((x * json.length) / width);
      const to = Math.max(from + 1, Math.floor(((x + 1) * json.length) / width));
      let min = 0;
      let max = 0;
      for (let i = from; i < to && i < json.length; i++) {
        for (let c = 0; c < channels; c++) {
          const at = (i * channels + c) * 2;
          min = Math.min(min, json.data[at]);
          max = Math.max(max, json.data[at + 1]);
        }
      }
      // Whole pixels: crisp columns, and rows a test can find exactly.
      const top = Math.round(mid - (max / full) * mid);
      const bottom = Math.round(mid - (min / full) * mid);
      ctx.fillStyle = x < playheadX ? PLAYED : WAVE;
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
      columns++;
    }
    ctx.fillStyle = PLAYHEAD;
    ctx.fillRect(Math.min(width - 2, Math.round(playheadX)), 0, 2, height);
    canvas.dataset.columns = String(columns);
    canvas.dataset.playheadX = String(Math.round(playheadX));
  }
}
