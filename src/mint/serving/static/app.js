// The page: picks or records a clip, draws it, and calls the mint API (multipart forms, JSON back).

import { PREVIEW_RATE, decodeMono, drawSpectrogram, drawWaveform, encodeWav } from "./audio.js";

const $ = (id) => document.getElementById(id);
const state = { audio: null, name: "", health: null, recorder: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// FastAPI's own validation errors carry a list of {loc, msg}; ours a plain string.
function describeError(status, body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((item) => `${(item.loc || []).slice(1).join(".")}: ${item.msg}`).join("; ");
  return `${status}: ${detail || "request failed"}`;
}

async function post(path, fields, withAudio) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  if (withAudio) form.append("file", state.audio, state.name);
  const response = await fetch(path, { method: "POST", body: form });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(describeError(response.status, body));
  return body;
}

// Runs `work` with `button` marked busy; errors go to the error box.
async function busy(button, work) {
  showError("");
  button.disabled = true;
  button.classList.add("busy");
  try {
    await work();
  } catch (error) {
    showError(error.message);
  } finally {
    button.classList.remove("busy");
    refreshButtons();
  }
}

function refreshButtons() {
  const have = {
    audio: state.audio !== null,
    llm: Boolean(state.health && state.health.model.stage === 2),
    index: Boolean(state.health && state.health.index),
  };
  for (const button of document.querySelectorAll("[data-needs]")) {
    if (button.classList.contains("busy")) continue;
    button.disabled = !button.dataset.needs.split(" ").every((need) => have[need]);
  }
}

async function setAudio(blob, name) {
  state.audio = blob;
  state.name = name;
  $("audio-name").textContent = name;
  $("player").src = URL.createObjectURL(blob);
  refreshButtons();
  try {
    const samples = await decodeMono(await blob.arrayBuffer());
    drawWaveform($("waveform"), samples);
    drawSpectrogram($("spectrogram"), samples);
    $("preview-note").textContent = `${(samples.length / PREVIEW_RATE).toFixed(2)} s`;
  } catch {
    $("preview-note").textContent = "this browser cannot decode the file for a preview; the server still can";
  }
  document.body.dataset.audioReady = "true";
}

async function toggleRecording() {
  const button = $("record-button");
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  showError("");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(`microphone: ${error.message}`);
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    button.classList.remove("recording");
    button.textContent = "● Record";
    try {
      // The recorder's container (WebM/Opus, ...) is decoded here and sent as WAV, which the server reads.
      const samples = await decodeMono(await new Blob(chunks).arrayBuffer());
      await setAudio(encodeWav(samples, PREVIEW_RATE), "recording.wav");
    } catch (error) {
      showError(`recording: ${error.message}`);
    }
  };
  state.recorder = recorder;
  recorder.start();
  button.classList.add("recording");
  button.textContent = "■ Stop";
}

function showBars(ranking) {
  const list = $("classify-output");
  list.replaceChildren(
    ...ranking.map(({ label, probability }) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = label;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(100 * probability).toFixed(1)}%`;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(100 * probability).toFixed(1)} %`;
      item.append(name, bar, value);
      return item;
    }),
  );
}

function showResults(results) {
  const list = $("search-output");
  if (!results.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "the index is empty" }));
    return;
  }
  list.replaceChildren(
    ...results.map((hit) => {
      const item = document.createElement("li");
      const rank = Object.assign(document.createElement("span"), { textContent: `${hit.rank}.` });
      const path = Object.assign(document.createElement("span"), { className: "path", textContent: hit.path });
      const match = hit.match === null ? "" : ` · match ${hit.match.toFixed(3)}`;
      const scores = Object.assign(document.createElement("span"), {
        className: "scores",
        textContent: `similarity ${hit.similarity.toFixed(3)}${match}`,
      });
      const player = Object.assign(document.createElement("audio"), { controls: true, preload: "none", src: hit.audio_url });
      item.append(rank, path, scores, player);
      return item;
    }),
  );
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    state.health = await response.json();
    const { model, index } = state.health;
    const parts = [`stage-${model.stage} model (${model.encoder}${model.llm ? ` + ${model.llm}` : ""})`];
    parts.push(index ? `${index.clips} clips indexed` : "no index");
    $("status").textContent = parts.join(" · ");
    if (model.stage !== 2) $("method").value = "atc";
  } catch (error) {
    $("status").textContent = `server unreachable: ${error.message}`;
  }
  refreshButtons();
}

function wire() {
  $("file-input").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) setAudio(file, file.name);
  });
  $("record-button").addEventListener("click", toggleRecording);
  $("caption-button").addEventListener("click", (event) =>
    busy(event.currentTarget, async () => {
      $("caption-output").textContent = (await post("/caption", {}, true)).caption;
    }),
  );
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, async () => {
      $("answer-output").textContent = (await post("/ask", { question: $("question").value }, true)).answer;
    });
  });
  $("classify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, async () => {
      showBars((await post("/classify", { labels: $("labels").value, method: $("method").value }, true)).ranking);
    });
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(event.submitter, async () => showResults((await post("/search", { query: $("query").value }, false)).results));
  });
  $("search-audio-button").addEventListener("click", (event) =>
    busy(event.currentTarget, async () => showResults((await post("/search", {}, true)).results)),
  );
}

wire();
refreshButtons();
loadHealth();
