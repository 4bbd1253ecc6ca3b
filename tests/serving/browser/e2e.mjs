// Drives the mint web page in headless Chromium: upload a clip, see it drawn, caption it, classify it,
// search the index by text, record from Chromium's fake microphone, and take a screenshot.
// Usage: node e2e.mjs URL AUDIO_FILE SCREENSHOT_PNG QUERY
// Prints one JSON line with what the page showed; exits non-zero on any failure.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, audioFile, screenshot, query] = process.argv.slice(2);
const STEP_MS = 30000;
const watchdog = setTimeout(() => {
  console.error("e2e: gave up after 100 s");
  process.exit(3);
}, 100000);

const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // A fake microphone (a beeping tone) that needs no permission prompt, for the recording step.
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
];

const text = (page, selector) => page.locator(selector).first().textContent();

async function paintedPixels(page, id) {
  return page.evaluate((canvasId) => {
    const canvas = document.getElementById(canvasId);
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    // The background is #10131a; count pixels of any other colour.
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] !== 0x10 || data[i + 1] !== 0x13 || data[i + 2] !== 0x1a) painted += 1;
    }
    return painted;
  }, id);
}

const profile = mkdtempSync(join(tmpdir(), "mint-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.MINT_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
    viewport: { width: 1100, height: 1300 },
    timeout: STEP_MS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });

  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById("status").textContent.includes("connecting"));
  const status = await text(page, "#status");

  await page.setInputFiles("#file-input", audioFile);
  await page.waitForSelector("body[data-audio-ready='true']");
  const waveform = await paintedPixels(page, "waveform");
  const spectrogram = await paintedPixels(page, "spectrogram");

  await page.click("#caption-button");
  await page.waitForFunction(() => document.getElementById("caption-output").textContent.trim() !== "");
  const caption = (await text(page, "#caption-output")).trim();

  await page.click("#classify-form button[type=submit]");
  await page.waitForSelector("#classify-output li");
  const classes = await page.locator("#classify-output li").count();

  await page.fill("#query", query);
  await page.click("#search-form button[type=submit]");
  await page.waitForSelector("#search-output li .path");
  const results = await page.locator("#search-output li .path").allTextContents();

  await page.click("#record-button");
  await page.waitForTimeout(1200);
  await page.click("#record-button");
  await page.waitForFunction(() => document.getElementById("audio-name").textContent === "recording.wav");
  const recorded = await text(page, "#preview-note");

  const error = await page.locator("#error").isVisible();
  await page.screenshot({ path: screenshot, fullPage: true });
  if (error) problems.push(`error box: ${await text(page, "#error")}`);
  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ status, waveform, spectrogram, caption, classes, results, recorded }));
} finally {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
