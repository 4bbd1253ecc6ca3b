// Audio in the browser: decoding to mono PCM, WAV encoding of recordings, and the waveform and
// spectrogram pictures. Plain functions over Float32Array samples; no dependencies.

export const PREVIEW_RATE = 16000;

// Decodes any format the browser can play into mono samples at PREVIEW_RATE (an offline context
// resamples while decoding and mixes channels down when asked for one).
export async function decodeMono(arrayBuffer) {
  const context = new OfflineAudioContext(1, 1, PREVIEW_RATE);
  const decoded = await context.decodeAudioData(arrayBuffer);
  if (decoded.numberOfChannels === 1) return decoded.getChannelData(0);
  const mixed = new Float32Array(decoded.length);
  for (let channel = 0; channel < decoded.numberOfChannels; channel += 1) {
    const data = decoded.getChannelData(channel);
    for (let i = 0; i < data.length; i += 1) mixed[i] += data[i] / decoded.numberOfChannels;
  }
  return mixed;
}

// 16-bit PCM mono WAV of `samples` at `rate` Hz.
export function encodeWav(samples, rate) {
  const bytes = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(bytes);
  const text = (offset, value) => [...value].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i += 1) {
    const clipped = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff, true);
  }
  return new Blob([bytes], { type: "audio/wav" });
}

export function drawWaveform(canvas, samples) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.fillStyle = "#10131a";
  g.fillRect(0, 0, width, height);
  g.strokeStyle = "#6fa8ff";
  g.beginPath();
  const perColumn = Math.max(1, Math.floor(samples.length / width));
  for (let x = 0; x < width; x += 1) {
    let low = 0;
    let high = 0;
    const start = Math.floor((x * samples.length) / width);
    for (let i = start; i < Math.min(samples.length, start + perColumn); i += 1) {
      low = Math.min(low, samples[i]);
      high = Math.max(high, samples[i]);
    }
    g.moveTo(x + 0.5, ((1 - high) * height) / 2);
    g.lineTo(x + 0.5, ((1 - low) * height) / 2 + 1);
  }
  g.stroke();
}

// In-place iterative radix-2 FFT of (re, im), length a power of two.
function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i += 1) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const step = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < size / 2; k += 1) {
        const wr = Math.cos(step * k);
        const wi = Math.sin(step * k);
        const a = start + k;
        const b = a + size / 2;
        const tr = re[b] * wr - im[b] * wi;
        const ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
}

// Dark blue -> purple -> orange -> pale yellow, for 0..1.
const STOPS = [
  [16, 19, 26],
  [72, 30, 120],
  [200, 60, 90],
  [250, 150, 40],
  [252, 250, 190],
];

function colour(value) {
  const position = Math.max(0, Math.min(1, value)) * (STOPS.length - 1);
  const low = Math.floor(position);
  const high = Math.min(STOPS.length - 1, low + 1);
  const t = position - low;
  return STOPS[low].map((channel, i) => Math.round(channel + (STOPS[high][i] - channel) * t));
}

// Log-magnitude spectrogram (512-point Hann frames, 80 dB range), low frequencies at the bottom.
export function drawSpectrogram(canvas, samples, size = 512) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  const columns = Math.max(1, Math.min(width, Math.floor(samples.length / (size / 4))));
  const bins = size / 2;
  const window = Float32Array.from({ length: size }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size));
  const power = new Float32Array(columns * bins);
  let peak = -Infinity;
  for (let c = 0; c < columns; c += 1) {
    const start = Math.floor((c * Math.max(0, samples.length - size)) / Math.max(1, columns - 1));
    const re = new Float32Array(size);
    const im = new Float32Array(size);
    for (let i = 0; i < size && start + i < samples.length; i += 1) re[i] = samples[start + i] * window[i];
    fft(re, im);
    for (let k = 0; k < bins; k += 1) {
      const db = 10 * Math.log10(re[k] * re[k] + im[k] * im[k] + 1e-12);
      power[c * bins + k] = db;
      peak = Math.max(peak, db);
    }
  }
  const image = g.createImageData(columns, height);
  for (let y = 0; y < height; y += 1) {
    const k = Math.floor(((height - 1 - y) * bins) / height);
    for (let c = 0; c < columns; c += 1) {
      const [r, gr, b] = colour((power[c * bins + k] - peak + 80) / 80);
      const at = (y * columns + c) * 4;
      image.data.set([r, gr, b, 255], at);
    }
  }
  g.fillStyle = "#10131a";
  g.fillRect(0, 0, width, height);
  // Stretch the columns over the canvas width through a scratch canvas.
  const scratch = document.createElement("canvas");
  scratch.width = columns;
  scratch.height = height;
  scratch.getContext("2d").putImageData(image, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(scratch, 0, 0, width, height);
}
