// Drives the dancesync page in Debian's headless Chromium (playwright-core, a fake camera playing a .y4m clip) or
// Debian's Firefox ESR (puppeteer-core over WebDriver BiDi, Firefox's own fake camera).
// Run by tests/test_browser.py; prints one JSON summary on stdout (progress goes to stderr).
//
//   node dance.mjs --url http://127.0.0.1:PORT/ --reference ID --clip CLIP.y4m --out DIR [--seconds 10]
//                  [--scenario dance|camera-denied|no-camera] [--chromium /usr/bin/chromium]
//   node dance.mjs --url URL --reference ID --out DIR --browser firefox [--ice default|host] [--firefox PATH]
//   node dance.mjs --url URL --out DIR --scenario upload --upload-file CLIP.mp4 --bad-file NOT-A-VIDEO [--browser ...]
//   node dance.mjs --url URL --reference ID --clip CLIP.y4m --out DIR --scenario coach   (Chromium: the coaching
//        page: the dancer's skeleton overlay, practice speed, an A-B loop, the end-of-session report)
//   node dance.mjs --url URL --reference ID --clip CLIP.y4m --out DIR --scenario keypoints   (Chromium: a
//        keypoints-only session, the skeleton drawn by the page over the local camera)
//
// Firefox's --ice: "default" keeps its ICE privacy (host addresses hidden behind mDNS .local names, with
// a=end-of-candidates); "host" shows real host addresses, as Firefox does for a page that is capturing from a real
// camera (its fake camera does not count as capturing, so a pref stands in for it).

import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import puppeteer from "puppeteer-core";

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
    browser: { type: "string", default: "chromium" },
    firefox: { type: "string", default: "/usr/bin/firefox-esr" },
    ice: { type: "string", default: "default" },
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

async function launchChromium(scenario) {
  // A fresh profile each run; launchPersistentContext is how Playwright takes a --user-data-dir.
  const profile = mkdtempSync(join(opts.out, "profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    args: chromiumArgs(scenario),
    headless: true,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  });
  for (const script of [recordControlMessages, recordOffer]) await context.addInitScript(script);
  const page = context.pages()[0] ?? (await context.newPage());
  return { page, version: `chromium/${context.browser()?.version() ?? "?"}`, close: () => context.close() };
}

function firefoxPrefs(downloads) {
  return {
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
    "media.peerconnection.ice.obfuscate_host_addresses": opts.ice !== "host",
    "browser.download.folderList": 2,
    "browser.download.dir": downloads,
    "browser.download.useDownloadDir": true,
    "browser.download.always_ask_before_handling_new_types": false,
    "browser.download.start_downloads_in_tmp_dir": false,
    "browser.download.alwaysOpenPanel": false,
    "browser.helperApps.neverAsk.saveToDisk": "text/csv",
  };
}

async function launchFirefox() {
  const downloads = join(opts.out, "downloads");
  mkdirSync(downloads, { recursive: true });
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: opts.firefox,
    headless: true,
    userDataDir: mkdtempSync(join(opts.out, "profile-")),
    extraPrefsFirefox: firefoxPrefs(downloads),
    defaultViewport: { width: 1280, height: 800 },
  });
  const page = (await browser.pages())[0] ?? (await browser.newPage());
  for (const script of [recordControlMessages, recordOffer]) await page.evaluateOnNewDocument(script);
  return { page: playwrightLike(page, downloads), version: await browser.version(), close: () => browser.close() };
}

/** The few Playwright page calls this driver makes, on a Puppeteer page. */
function playwrightLike(page, downloads) {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  return {
    on: (event, handler) => page.on(event, handler),
    goto: (url, options) => page.goto(url, { waitUntil: options?.waitUntil ?? "load" }),
    title: () => page.title(),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitForFunction: (fn, arg, options) => page.waitForFunction(fn, { timeout: options?.timeout }, arg),
    waitForSelector: (selector, options) => page.waitForSelector(selector, { timeout: options?.timeout }),
    waitForTimeout: sleep,
    click: (selector) => page.click(selector),
    selectOption: (selector, value) => page.select(selector, value),
    fill: (selector, text) =>
      page.$eval(selector, (element, value) => {
        element.value = value;
        element.dispatchEvent(new Event("input", { bubbles: true }));
      }, text),
    setInputFiles: async (selector, path) => (await page.$(selector)).uploadFile(path),
    $$eval: (selector, fn) => page.$$eval(selector, fn),
    textContent: (selector) => page.$eval(selector, (element) => element.textContent),
    isHidden: (selector) => page.$eval(selector, (element) => element.hidden || !element.getClientRects().length),
    screenshot: (options) => page.screenshot(options),
    locator: (selector) => ({ screenshot: async (options) => (await page.$(selector)).screenshot(options) }),
    /** Click a download button; the file Firefox saves into the downloads folder. */
    download: async (selector, outDir) => {
      const before = new Set(readdirSync(downloads));
      await page.click(selector);
      const deadline = Date.now() + 30_000;
      for (;;) {
        const names = readdirSync(downloads).filter((name) => !before.has(name));
        const done = names.filter((name) => !name.endsWith(".part") && !existsSync(join(downloads, `${name}.part`)));
        if (done.length) return { filename: done[0], path: join(downloads, done[0]), failure: null };
        if (Date.now() > deadline) return { filename: null, path: null, failure: "no file saved within 30 s" };
        await sleep(100);
      }
    },
  };
}

/** Keep the offer the page sent (its ICE candidates), read when the answer is applied. */
function recordOffer() {
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description) {
    window.__offerSdp = this.localDescription?.sdp ?? null;
    window.__pc = this;
    window.__connectedAt = null;
    this.addEventListener("connectionstatechange", () => {
      if (this.connectionState === "connected") window.__connectedAt ??= performance.now();
    });
    return apply.call(this, description);
  };
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
  if (page.download) return page.download(`#${buttonId}`, outDir);
  const [item] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }), page.click(`#${buttonId}`)]);
  const failure = await item.failure();
  const path = join(outDir, item.suggestedFilename());
  if (!failure) await item.saveAs(path);
  return { filename: item.suggestedFilename(), path: failure ? null : path, failure };
}

/** Frames of the returned (annotated) video the browser decoded, from its own WebRTC statistics. */
function framesBack(page) {
  return page.evaluate(async () => {
    if (!window.__pc) return null;
    let frames = 0;
    (await window.__pc.getStats()).forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "video") frames += report.framesDecoded ?? 0;
    });
    return frames;
  });
}

/** The ICE candidate lines of the offer the page sent. */
function offerCandidates(page) {
  return page.evaluate(() =>
    (window.__offerSdp ?? "").split(/\r?\n/).filter((line) => /^a=(candidate|end-of-candidates)/.test(line)),
  );
}

async function dance(page, result) {
  result.dancer = await pickReference(page, opts.reference);
  log("reference picked", result.dancer);
  await page.screenshot({ path: join(opts.out, "ready.png") });

  const startedAt = Date.now();
  await page.click("#start");
  await page.waitForFunction(() => document.body.dataset.state !== "connecting", null, { timeout: 60_000 });
  result.connectSeconds = (Date.now() - startedAt) / 1000;
  result.offerCandidates = await offerCandidates(page);
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
  result.framesBack = await framesBack(page);

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

/** Pixels of an overlay canvas (the dancer's by default) that are drawn (alpha > 0), and its size. */
function overlayPixels(page, id = "dancer-overlay") {
  return page.evaluate((id) => {
    const canvas = document.getElementById(id);
    if (!canvas.width || !canvas.height) return { width: canvas.width, height: canvas.height, drawn: 0, red: 0 };
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    let drawn = 0;
    let red = 0;
    for (let i = 3; i < data.length; i += 4) {
      if (data[i] === 0) continue;
      drawn += 1;
      if (data[i - 3] === 0xff && data[i - 2] === 0x2d && data[i - 1] === 0x2d) red += 1;
    }
    return { width: canvas.width, height: canvas.height, drawn, red };
  }, id);
}

/** A keypoints-only session in Chromium: the option ticked, the camera sent only, no video back, the user's
 * skeleton drawn from the pose messages over the local camera view. */
async function keypointsOnly(page, result) {
  result.dancer = await pickReference(page, opts.reference);
  await page.check("#keypoints-only");
  await page.click("#start");
  await page.waitForFunction(() => document.body.dataset.state !== "connecting", null, { timeout: 60_000 });
  if ((await readPage(page)).state !== "dancing") throw new Error(`session did not start: ${await readPage(page)}`);
  result.offerVideo = await page.evaluate(() =>
    (window.__offerSdp ?? "").split(/\r?\n/).filter((line) => /^a=(sendrecv|sendonly|recvonly)$/.test(line)),
  );
  result.caption = await page.evaluate(() => document.getElementById("you-caption").textContent.trim());
  result.samples = [];
  const danceStart = Date.now();
  while ((Date.now() - danceStart) / 1000 < Number(opts.seconds)) {
    await page.waitForTimeout(1000);
    const local = await page.evaluate(() => {
      const video = document.getElementById("you");
      return { width: video.videoWidth, local: video.srcObject?.getVideoTracks()[0]?.kind === "video" };
    });
    const sample = { overlay: await overlayPixels(page, "you-overlay"), video: local, page: await readPage(page) };
    result.samples.push(sample);
    log(`t=${((Date.now() - danceStart) / 1000).toFixed(1)}`, JSON.stringify(sample.overlay), sample.page.state);
    if (sample.page.state !== "dancing") break; // a busy machine: the dancer video ended first
  }
  await page.screenshot({ path: join(opts.out, "keypoints-only.png") });
  result.framesBack = await framesBack(page);
  if (await page.isEnabled("#stop")) await page.click("#stop");
  await page.waitForSelector("#summary:not([hidden])", { timeout: 30_000 });
  result.summary = await page.evaluate(() => ({ processed: document.getElementById("sum-processed").textContent.trim() }));
}

const coachText = (page) =>
  page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent.trim() ?? null;
    const dancer = document.getElementById("dancer");
    return {
      lastMove: text("last-move"),
      latency: text("latency"),
      passes: text("passes"),
      loop: text("loop-label"),
      rate: dancer.playbackRate,
      dancerTime: dancer.currentTime,
    };
  });

/** The coaching page in Chromium: the dancer's skeleton before and while dancing, 0.75x, an A-B loop danced
 * twice, then the report (charts, tier counts, latency, the worst moves). A screenshot at each step. */
async function coach(page, result) {
  result.dancer = await pickReference(page, opts.reference);
  await page.waitForFunction(() => document.getElementById("dancer").readyState >= 2, null, { timeout: 30_000 });
  await page.waitForTimeout(1500); // the keypoint CSV
  result.overlayReady = await overlayPixels(page);
  await page.screenshot({ path: join(opts.out, "coach-ready.png") });

  await page.selectOption("#rate", "0.75");
  await page.click("#start");
  await page.waitForFunction(() => document.body.dataset.state !== "connecting", null, { timeout: 60_000 });
  if ((await readPage(page)).state !== "dancing") throw new Error(`session did not start: ${await readPage(page)}`);
  result.rateWhileDancing = await page.evaluate(() => document.getElementById("dancer").playbackRate);
  await page.waitForTimeout(3000);
  result.overlayDancing = await overlayPixels(page);
  result.verdict = null;
  await page.screenshot({ path: join(opts.out, "coach-dancing.png") });

  await page.click("#loop-a");
  await page.waitForTimeout(3000); // the reference must outlast this at 0.75x: the loop keeps it from ending
  await page.click("#loop-b");
  result.loopSet = await coachText(page);
  const deadline = Date.now() + 40_000;
  result.coachSamples = [];
  for (;;) {
    await page.waitForTimeout(1000);
    const sample = await coachText(page);
    result.coachSamples.push(sample);
    // a move's verdict on the returned video, from a server that judges moves (an older one sends none)
    const verdict = await page.evaluate(() => {
      const element = document.getElementById("verdict");
      return element.hidden ? null : element.textContent;
    });
    if (verdict && !result.verdict) {
      result.verdict = verdict;
      await page.screenshot({ path: join(opts.out, "coach-verdict.png") });
    }
    log("coach", JSON.stringify(sample));
    if ((sample.passes.match(/Pass \d+/g) ?? []).length >= 3 || Date.now() > deadline) break;
  }
  await page.screenshot({ path: join(opts.out, "coach-loop.png") });
  result.coach = await coachText(page);

  await page.click("#stop");
  await page.waitForSelector("#summary:not([hidden])", { timeout: 30_000 });
  await page.waitForSelector("#report-score-chart .uplot canvas", { timeout: 30_000 });
  await page.waitForTimeout(1500); // the worst moves' stills
  result.clock = await clockReport(page);
  result.loop = await page.evaluate(() => {
    const { a, b } = document.getElementById("loop-label").dataset;
    // clock messages that went back by more than half a second: the loop's seeks to A
    const clocks = window.__controlSent.map(([, data]) => JSON.parse(data)).filter((m) => m.type === "clock");
    const jumps = [];
    clocks.slice(1).forEach((m, i) => {
      if (m.t < clocks[i].t - 0.5) jumps.push({ from: clocks[i].t, to: m.t });
    });
    return { a: Number(a), b: Number(b), jumps };
  });
  result.report = await page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent.trim();
    const drawn = (canvas) => {
      const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 60) count += 1;
      return count;
    };
    return {
      hidden: document.getElementById("report").hidden,
      tiers: text("report-tiers"),
      latency: text("report-latency"),
      scoreCharts: document.querySelectorAll("#report-score-chart .uplot canvas").length,
      limbCharts: document.querySelectorAll("#report-limb-chart .uplot canvas").length,
      worst: [...document.querySelectorAll("#report-worst li")].map((li) => ({
        title: li.querySelector("p").textContent,
        lit: drawn(li.querySelector("canvas")),
      })),
    };
  });
  await page.screenshot({ path: join(opts.out, "coach-report.png") });
  await page.evaluate(() => document.getElementById("report-worst").scrollIntoView());
  await page.screenshot({ path: join(opts.out, "coach-report-worst.png") });
  if (result.report.worst.length) {
    await page.click("#report-worst li:first-child button");
    await page.waitForTimeout(800); // part way through the move
    await page.locator("#report-worst li:first-child").screenshot({ path: join(opts.out, "coach-replay.png") });
  }
  log("report", JSON.stringify(result.report));
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
  const result = { scenario: opts.scenario, browser: opts.browser, ice: opts.ice, problems: [] };
  const session = opts.browser === "firefox" ? await launchFirefox() : await launchChromium(opts.scenario);
  try {
    result.version = session.version;
    const page = session.page;
    watchConsole(page, result.problems);
    await page.goto(opts.url, { waitUntil: "load" });
    result.title = await page.title();
    if (opts.scenario === "dance") await dance(page, result);
    else if (opts.scenario === "upload") await upload(page, result);
    else if (opts.scenario === "coach") await coach(page, result);
    else if (opts.scenario === "keypoints") await keypointsOnly(page, result);
    else await cameraProblem(page, result);
  } catch (error) {
    result.failure = String(error?.stack ?? error);
    log("failed:", result.failure);
  } finally {
    await session.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
