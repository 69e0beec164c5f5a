// Drives the dancesync page in Debian's headless Chromium with a fake camera playing a .y4m clip.
// Run by tests/test_browser.py; prints one JSON summary on stdout (progress goes to stderr).
//
//   node dance.mjs --url http://127.0.0.1:PORT/ --reference ID --clip CLIP.y4m --out DIR [--seconds 10]
//                  [--scenario dance|camera-denied|no-camera] [--chromium /usr/bin/chromium]
//   node dance.mjs --url URL --out DIR --scenario upload --upload-file CLIP.mp4 --bad-file NOT-A-VIDEO

import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    reference: { type: "string" },
    clip: { type: "string" },
    out: { type: "string" },
    seconds: { type: "string", default: "10" },
    scenario: { type: "string", default: "dance" },
    "upload-file": { type: "string" },
    "bad-file": { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
for (const name of ["url", "out"]) if (!opts[name]) throw new Error(`--${name} is required`);

const log = (...args) => console.error(`[dance ${new Date().toISOString().slice(11, 23)}]`, ...args);

function chromiumArgs(scenario) {
  const args = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ];
  if (scenario === "no-camera" || scenario === "upload") return args;
  if (scenario === "camera-denied") return [...args, "--use-fake-device-for-media-stream", "--deny-permission-prompts"];
  if (!opts.clip) throw new Error("--clip is required");
  return [
    ...args,
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-video-capture=${opts.clip}`,
  ];
}

async function launch(scenario) {
  // A fresh profile each run; launchPersistentContext is how Playwright takes a --user-data-dir.
  const profile = mkdtempSync(join(opts.out, "profile-"));
  return chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    args: chromiumArgs(scenario),
    headless: true,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  });
}

/** Record what the page sends on the `control` channel, to check the clock it drives. */
function recordControlMessages() {
  const sent = (window.__controlSent = []);
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    if (this.label === "control" && sent.length < 10_000) sent.push([performance.now(), String(data)]);
    return send.call(this, data);
  };
}

/** The clock messages sent: count, rate and largest gap while playing, how far t strays from wall time. */
function clockReport(page) {
  return page.evaluate(() => {
    const clocks = window.__controlSent
      .map(([at, data]) => ({ at, ...JSON.parse(data) }))
      .filter((message) => message.type === "clock");
    const playing = clocks.filter((message) => message.playing);
    if (playing.length < 2) return { count: clocks.length, playing: playing.length };
    const first = playing[0];
    const last = playing.at(-1);
    let maxGapMs = 0;
    let backwards = 0;
    let maxStray = 0;
    playing.slice(1).forEach((message, i) => {
      maxGapMs = Math.max(maxGapMs, message.at - playing[i].at);
      if (message.t < playing[i].t) backwards += 1;
      maxStray = Math.max(maxStray, Math.abs(message.t - first.t - (message.at - first.at) / 1000));
    });
    return {
      count: clocks.length,
      playing: playing.length,
      perSecond: (playing.length - 1) / ((last.at - first.at) / 1000),
      maxGapMs,
      backwards,
      maxStrayS: maxStray,
      firstT: first.t,
      last: clocks.at(-1),
    };
  });
}

function watchConsole(page, problems) {
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
}

/** What a person would read on the page. */
function readPage(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent.trim() ?? null;
    const error = document.getElementById("error");
    return {
      state: document.body.dataset.state,
      status: text("status"),
      error: error && !error.hidden ? text("error-text") : null,
      score: text("score"),
      average: text("average"),
      worst: text("worst"),
      fps: text("fps"),
      ticks: text("ticks"),
    };
  });
}

/** The returned (annotated) video element: size, media time and frame counts. */
function readRemoteVideo(page) {
  return page.evaluate(() => {
    const video = document.getElementById("you");
    const quality = video.getVideoPlaybackQuality?.();
    return {
      width: video.videoWidth,
      height: video.videoHeight,
      currentTime: video.currentTime,
      frames: quality ? quality.totalVideoFrames : null,
      paused: video.paused,
    };
  });
}

/** The returned video's current frame at its own size, as PNG bytes (null before the first frame). */
async function grabRemoteFrame(page) {
  const dataUrl = await page.evaluate(() => {
    const video = document.getElementById("you");
    if (!video.videoWidth) return null;
    const canvas = Object.assign(document.createElement("canvas"), {
      width: video.videoWidth,
      height: video.videoHeight,
    });
    canvas.getContext("2d").drawImage(video, 0, 0);
    return canvas.toDataURL("image/png");
  });
  return dataUrl && Buffer.from(dataUrl.slice(dataUrl.indexOf(",") + 1), "base64");
}

async function pickReference(page, reference) {
  await page.waitForSelector(`#reference option[value="${reference}"]`, { state: "attached", timeout: 30_000 });
  await page.selectOption("#reference", reference);
  // The dancer video must load in this browser (H.264 MP4 from the server).
  await page.waitForFunction(() => document.getElementById("dancer").readyState >= 1, null, { timeout: 30_000 });
  return page.evaluate(() => {
    const video = document.getElementById("dancer");
    return { width: video.videoWidth, height: video.videoHeight, duration: video.duration };
  });
}

async function download(page, buttonId, outDir) {
  const [item] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }), page.click(`#${buttonId}`)]);
  const failure = await item.failure();
  const path = join(outDir, item.suggestedFilename());
  if (!failure) await item.saveAs(path);
  return { filename: item.suggestedFilename(), path: failure ? null : path, failure };
}

async function dance(page, result) {
  result.dancer = await pickReference(page, opts.reference);
  log("reference picked", result.dancer);
  await page.screenshot({ path: join(opts.out, "ready.png") });

  const startedAt = Date.now();
  await page.click("#start");
  await page.waitForFunction(() => document.body.dataset.state !== "connecting", null, { timeout: 60_000 });
  result.connectSeconds = (Date.now() - startedAt) / 1000;
  const afterStart = await readPage(page);
  if (afterStart.state !== "dancing") throw new Error(`session did not start: ${JSON.stringify(afterStart)}`);
  log(`dancing after ${result.connectSeconds}s`);

  const seconds = Number(opts.seconds);
  const danceStart = Date.now();
  result.samples = [];
  let screenshotTaken = false;
  while ((Date.now() - danceStart) / 1000 < seconds) {
    await page.waitForTimeout(1000);
    const sample = {
      at: (Date.now() - danceStart) / 1000,
      remote: await readRemoteVideo(page),
      page: await readPage(page),
      dancerTime: await page.evaluate(() => document.getElementById("dancer").currentTime),
    };
    result.samples.push(sample);
    log(`t=${sample.at.toFixed(1)}`, JSON.stringify(sample.remote), sample.page.score, sample.page.fps);
    if (!screenshotTaken && sample.at >= seconds * 0.6 && sample.remote.width > 0) {
      await page.screenshot({ path: join(opts.out, "dance.png") });
      await page.locator("#you").screenshot({ path: join(opts.out, "annotated.png") });
      const frame = await grabRemoteFrame(page);
      if (frame) writeFileSync(join(opts.out, "remote-frame.png"), frame);
      screenshotTaken = true;
    }
  }
  result.live = await readPage(page);

  await page.click("#stop");
  await page.waitForSelector("#summary:not([hidden])", { timeout: 30_000 });
  result.clock = await clockReport(page);
  result.summary = await page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent.trim();
    return {
      average: text("sum-average"),
      processed: text("sum-processed"),
      skipped: text("sum-skipped"),
      worst: text("sum-worst"),
    };
  });
  result.afterStop = await readPage(page);
  await page.screenshot({ path: join(opts.out, "summary.png") });
  log("summary", result.summary);

  result.downloads = {
    keypoints: await download(page, "download-keypoints", opts.out),
    scores: await download(page, "download-scores", opts.out),
  };
  result.afterDownloads = await readPage(page);
}

/** Start without a usable camera: the page must say why, in words, and be ready to try again. */
async function cameraProblem(page, result) {
  await pickReference(page, opts.reference);
  await page.click("#start");
  await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
  result.afterStart = await readPage(page);
  await page.screenshot({ path: join(opts.out, `${opts.scenario}.png`) });
}

/** Upload through the page: a file the server rejects (its message must show), then a real clip extracted with
 * MoveNet Thunder (a progress bar, then the new reference listed and selected). */
async function upload(page, result) {
  await page.waitForSelector("#reference option[value]:not([value=''])", { state: "attached", timeout: 30_000 });
  await page.click("#upload-panel summary");

  await page.setInputFiles("#upload-file", opts["bad-file"]);
  await page.click("#upload-button");
  await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
  result.rejected = await readPage(page);
  await page.screenshot({ path: join(opts.out, "upload-rejected.png") });

  await page.click("#error-close");
  await page.setInputFiles("#upload-file", opts["upload-file"]);
  await page.fill("#upload-title", "Uploaded in the browser test");
  result.poseOptions = await page.$$eval("#upload-pose option", (options) => options.map((o) => o.value));
  await page.selectOption("#upload-pose", "movenet-thunder");
  await page.click("#upload-button");
  await page.waitForSelector("#upload-progress:not([hidden])", { timeout: 10_000 });
  result.progressLabels = [];
  const deadline = Date.now() + 180_000;
  for (;;) {
    const label = await page.textContent("#upload-label");
    if (result.progressLabels.at(-1) !== label) result.progressLabels.push(label);
    if (label.startsWith("Added") || Date.now() > deadline) break;
    if (!(await page.isHidden("#error"))) break;
    await page.waitForTimeout(100);
  }
  result.uploaded = await readPage(page);
  result.selected = await page.evaluate(() => {
    const select = document.getElementById("reference");
    return { value: select.value, label: select.selectedOptions[0]?.textContent, count: select.options.length };
  });
  await page.screenshot({ path: join(opts.out, "upload-done.png") });
}

async function main() {
  const result = { scenario: opts.scenario, problems: [] };
  const context = await launch(opts.scenario);
  try {
    result.browser = context.browser()?.version() ?? null;
    await context.addInitScript(recordControlMessages);
    const page = context.pages()[0] ?? (await context.newPage());
    watchConsole(page, result.problems);
    await page.goto(opts.url, { waitUntil: "load" });
    result.title = await page.title();
    if (opts.scenario === "dance") await dance(page, result);
    else if (opts.scenario === "upload") await upload(page, result);
    else await cameraProblem(page, result);
  } catch (error) {
    result.failure = String(error?.stack ?? error);
    log("failed:", result.failure);
  } finally {
    await context.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
