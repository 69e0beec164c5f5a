// The end-of-session report inside the summary dialog: the score along the song with the moves' boundaries and
// tiers, how often each limb was the one most off, the tier counts, the measured latency, and the three worst
// moves replayed: the dancer video at that moment with the dancer's skeleton, and the user's beside it.
// Charts are uPlot (web/package.json, installed by the set-up into web/node_modules and served under /static);
// it is loaded when a report is first shown, so the live page never waits for it.

import { cropBox, LIMBS, limbName, poseCrop, skeletonShapes, tickAt } from "./skeleton.js";
import { drawShapes } from "./overlay.js";
import { latencyText, songChartData, TIER_NAMES, TIERS, tierCountsText, verdictText, worstTickIn } from "./coach.js";

const UPLOT = "./node_modules/uplot/dist/uPlot.esm.js";
export const TIER_COLOURS = { perfect: "#3ddc84", good: "#4fc3f7", ok: "#ffc247", miss: "#ff6161" };
const AXIS = { stroke: "#98a3b0", grid: { stroke: "rgba(255,255,255,0.08)" }, ticks: { stroke: "#2f3843" } };

let uPlotModule = null;
async function loadUPlot() {
  uPlotModule ??= import(UPLOT).then((module) => module.default);
  return uPlotModule;
}

export class Report {
  constructor({ section, tiers, latency, scoreChart, limbChart, worst }) {
    Object.assign(this, { section, tiers, latency, scoreChart, limbChart, worst });
    this.plots = [];
    this.replay = Object.assign(document.createElement("video"), { muted: true, playsInline: true, preload: "auto" });
  }

  clear() {
    this.plots.forEach((plot) => plot.destroy());
    this.plots = [];
    this.worst.replaceChildren();
    this.section.hidden = true;
  }

  /** `scores` [{ tick, t, score }], `moveLog` coach.MoveLog, `boundaries` [{ start, end }] (the reference's
   * moves, or none), `dancer`/`user` keypoints ({ poses, fps } or null), `videoUrl` the dancer video,
   * `cameraAspect` the user's camera frame's width / height. */
  async show({ scores, moveLog, boundaries, stats, dancer, user, videoUrl, cameraAspect = 4 / 3 }) {
    this.cameraAspect = cameraAspect;
    this.clear();
    this.section.hidden = false;
    const moves = moveLog.list;
    this.tiers.textContent = moves.length ? tierCountsText(moveLog.tierCounts()) : "No move verdicts from this server.";
    this.latency.textContent = capitalise(latencyText(stats) ?? "your latency was not measured with confidence");
    const uPlot = await loadUPlot();
    this.#songChart(uPlot, scores, moves, boundaries.length ? boundaries : moves);
    this.#limbChart(uPlot, moveLog.limbTicks);
    this.replay.src = videoUrl;
    for (const move of moveLog.worst(3)) this.#worstMove(move, scores, dancer, user);
  }

  #width(element) {
    return Math.max(280, element.clientWidth || 480);
  }

  #songChart(uPlot, scores, moves, boundaries) {
    const data = songChartData(scores, moves);
    const stepped = uPlot.paths.stepped({ align: 1 });
    const tierSeries = TIERS.map((tier) => ({
      label: TIER_NAMES[tier],
      stroke: TIER_COLOURS[tier],
      fill: `${TIER_COLOURS[tier]}33`,
      width: 2,
      paths: stepped,
      points: { show: false },
    }));
    const starts = boundaries.map((m) => m.start);
    const plot = new uPlot(
      {
        width: this.#width(this.scoreChart),
        height: 180,
        scales: { x: { time: false }, y: { range: [0, 100] } },
        axes: [{ ...AXIS, values: (u, ticks) => ticks.map(clockTime) }, { ...AXIS }],
        series: [{ label: "time" }, { label: "Score", stroke: "#ff5c8a", width: 1.5, points: { show: false } }, ...tierSeries],
        legend: { live: false },
        hooks: {
          draw: [
            (u) => {
              // the moves' boundaries: thin lines through the plot
              const { ctx, bbox } = u;
              ctx.save();
              ctx.strokeStyle = "rgba(255,255,255,0.25)";
              ctx.lineWidth = 1;
              for (const t of starts) {
                const x = Math.round(u.valToPos(t, "x", true)) + 0.5;
                if (x < bbox.left || x > bbox.left + bbox.width) continue;
                ctx.beginPath();
                ctx.moveTo(x, bbox.top);
                ctx.lineTo(x, bbox.top + bbox.height);
                ctx.stroke();
              }
              ctx.restore();
            },
          ],
        },
      },
      [data.x, data.score, ...TIERS.map((tier) => data.tiers[tier])],
      this.scoreChart,
    );
    this.plots.push(plot);
  }

  #limbChart(uPlot, limbTicks) {
    const counts = LIMBS.map((limb) => limbTicks[limb] ?? 0);
    const plot = new uPlot(
      {
        width: this.#width(this.limbChart),
        height: 160,
        scales: { x: { time: false, range: [-0.6, LIMBS.length - 0.4] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
        axes: [
          { ...AXIS, splits: () => LIMBS.map((_, i) => i), values: (u, ticks) => ticks.map((i) => limbName(LIMBS[i] ?? "")) },
          { ...AXIS },
        ],
        series: [
          { label: "limb" },
          {
            label: "Ticks most off",
            stroke: "#ff5c8a",
            fill: "#ff5c8a88",
            paths: uPlot.paths.bars({ size: [0.6, 60] }),
            points: { show: false },
          },
        ],
        legend: { live: false },
      },
      [LIMBS.map((_, i) => i), counts],
      this.limbChart,
    );
    this.plots.push(plot);
  }

  #worstMove(move, scores, dancer, user) {
    const item = document.createElement("li");
    // the move's worst moment where the user was seen, so both skeletons can be compared
    const seen = (score) => Boolean(user?.poses.get(score.tick)?.some(Number.isFinite));
    const at = worstTickIn(scores, move.start, move.end, seen) ?? { t: move.start };
    const title = document.createElement("p");
    title.textContent = `Move ${move.move + 1} at ${clockTime(move.start)}: ${verdictText(move)} (${Math.round(move.score)})`;
    const canvas = Object.assign(document.createElement("canvas"), { width: 480, height: 240 });
    canvas.className = "replay";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `The dancer at ${clockTime(at.t)} with the skeleton, and yours beside it`);
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: "Replay move" });
    button.addEventListener("click", () => this.#play(canvas, move, dancer, user));
    item.append(title, canvas, button);
    this.worst.append(item);
    this.#still(canvas, at.t, move.limb, dancer, user);
  }

  /** The dancer video at `t` with both skeletons on `canvas`. */
  async #still(canvas, t, off, dancer, user) {
    const video = this.replay;
    await this.#queue;
    this.#queue = (async () => {
      await ready(video);
      video.currentTime = t;
      await new Promise((resolve) => video.addEventListener("seeked", resolve, { once: true }));
      paint(canvas, video, t, off, dancer, user, this.cameraAspect);
    })().catch(() => {});
    return this.#queue;
  }

  #queue = Promise.resolve();

  async #play(canvas, move, dancer, user) {
    await this.#still(canvas, move.start, move.limb, dancer, user);
    const video = this.replay;
    const step = (now, metadata) => {
      paint(canvas, video, metadata.mediaTime, move.limb, dancer, user, this.cameraAspect);
      if (metadata.mediaTime < move.end && !video.paused) video.requestVideoFrameCallback(step);
      else video.pause();
    };
    if (typeof video.requestVideoFrameCallback === "function") video.requestVideoFrameCallback(step);
    video.play().catch(() => {});
    setTimeout(() => video.pause(), ((move.end - move.start) / Math.max(video.playbackRate, 0.1)) * 1000 + 200);
  }
}

/**
 * Left half: the dancer's frame at `t`, zoomed on the dancer, with the dancer's skeleton; right half: the user's
 * skeleton at that tick, zoomed the same way on its own parts (the user's frame is not kept). `cameraAspect` is
 * the user's camera frame's width / height.
 */
function paint(canvas, video, t, off, dancer, user, cameraAspect) {
  const ctx = canvas.getContext("2d");
  const half = { x: 0, y: 0, width: canvas.width / 2, height: canvas.height };
  const aspect = half.width / half.height;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const pose = dancer && dancer.poses.get(tickAt(t, dancer.fps));
  const frameAspect = video.videoWidth && video.videoHeight ? video.videoWidth / video.videoHeight : 4 / 3;
  const crop = (pose && poseCrop(pose, aspect, frameAspect)) ?? { x: 0, y: 0, width: 1, height: 1 };
  const box = cropBox(crop, half);
  if (video.videoWidth) ctx.drawImage(video, box.x, box.y, box.width, box.height);
  if (pose) drawShapes(ctx, skeletonShapes(pose, box, off));
  const right = { ...half, x: half.width };
  ctx.fillStyle = "#1b2027";
  ctx.fillRect(right.x, 0, right.width, right.height);
  const mine = user && user.poses.get(tickAt(t, dancer?.fps ?? user.fps));
  const myCrop = mine && poseCrop(mine, aspect, cameraAspect);
  if (myCrop) drawShapes(ctx, skeletonShapes(mine, cropBox(myCrop, right), off));
  ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
  ctx.fillRect(0, 0, canvas.width, 18);
  ctx.fillStyle = "#e8ecf1";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText("Dancer", 6, 13);
  ctx.fillText(myCrop ? "You" : "You (not found at this tick)", right.x + 6, 13);
}

function ready(video) {
  if (video.readyState >= 1) return Promise.resolve();
  return new Promise((resolve, reject) => {
    video.addEventListener("loadedmetadata", resolve, { once: true });
    video.addEventListener("error", reject, { once: true });
  });
}

/** 83.25 → "1:23.3": the report's time axis (moves are shorter than a second or two). */
export const clockTime = (t) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`;

const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

