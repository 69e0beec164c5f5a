// Drives the page's "Score a recording" panel in Debian's headless Chromium (playwright-core): picks the dance,
// sends the recording, follows the job, and reads the summary and the report it shows, with a screenshot of each
// step. Run by tests/test_take_page.py; prints one JSON summary on stdout.
//
//   node take.mjs --url http://127.0.0.1:PORT/ --take TAKE.mp4 --out DIR [--chromium /usr/bin/chromium]

import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    take: { type: "string" },
    out: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
const args = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking"];
const browser = await chromium.launch({ executablePath: opts.chromium, args });
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (error) => problems.push(`pageerror: ${error}`));
  page.on("console", (message) => message.type() === "error" && problems.push(`console: ${message.text()}`));
  await page.goto(opts.url);
  await page.waitForFunction(() => document.getElementById("reference").value);
  await page.click("#take-panel summary");
  await page.setInputFiles("#take-file", opts.take);
  await page.screenshot({ path: `${opts.out}/take-1-chosen.png` });
  await page.click("#take-button");
  await page.waitForFunction(() => !document.getElementById("take-progress").hidden);
  await page.screenshot({ path: `${opts.out}/take-2-progress.png` });
  const ended = () => !document.getElementById("report").hidden || !document.getElementById("error").hidden;
  await page.waitForFunction(ended, null, { timeout: 600_000, polling: 250 });
  await page.waitForFunction(() => document.querySelectorAll("#report-worst li").length > 0, null, { timeout: 20_000 });
  await page.screenshot({ path: `${opts.out}/take-3-report.png`, fullPage: true });
  const shown = await page.evaluate(() => ({
    label: document.getElementById("take-label").textContent,
    download: !document.getElementById("take-download").hidden,
    summaryOpen: document.getElementById("summary").open,
    processed: document.getElementById("sum-processed").textContent,
    tiers: document.getElementById("report-tiers").textContent,
    charts: ["report-score-chart", "report-limb-chart"].filter((id) => document.querySelector(`#${id} canvas`)).length,
    worst: document.querySelectorAll("#report-worst li").length,
    error: document.getElementById("error").hidden ? null : document.getElementById("error-text").textContent,
  }));
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => document.querySelectorAll("#progress-rows tr").length > 0, null, { timeout: 20_000 });
  const pastSessions = await page.evaluate(() => document.querySelectorAll("#progress-rows tr").length);
  console.log(JSON.stringify({ ...shown, pastSessions, problems }));
} catch (error) {
  console.log(JSON.stringify({ failure: String(error), problems }));
} finally {
  await browser.close();
}
