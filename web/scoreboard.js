// The live score while dancing: the numbers under the videos, the badge on the returned video, the history
// sparkline, and one throttled spoken summary (the numbers themselves are not live regions: they change ten
// times a second).

import { Announcer } from "./announcer.js";
import {
  FAIR,
  GOOD,
  historyPoints,
  liveSummaryText,
  partName,
  scoreClass,
  scoreText,
  tickCounts,
  ticksText,
} from "./score.js";

/** Scores the sparkline holds. */
export const HISTORY_LENGTH = 120;

/** How long a move's verdict stays on the returned video. */
export const VERDICT_SHOWN_MS = 1500;

export class Scoreboard {
  constructor({ score, average, worst, fps, ticks, badge, history, live, lastMove, latency, passes, verdict }) {
    Object.assign(this, { score, average, worst, fps, ticks, badge, history, lastMove, latency, passes, verdict });
    this.announcer = new Announcer(live);
    this.verdictText = null; // the last move's verdict, spoken with the score summary
    this.verdictTimer = null;
  }

  reset() {
    for (const element of [this.score, this.average, this.badge]) setScore(element, NaN);
    for (const element of [this.worst, this.fps, this.ticks, this.lastMove, this.latency]) element.textContent = "–";
    this.passes.textContent = "";
    this.badge.hidden = true;
    this.verdict.hidden = true;
    this.verdictText = null;
    this.announcer.clear();
    this.#draw([]);
  }

  /** A move's verdict (coach.verdictText) and its tier: flashed on the returned video, kept under it, spoken. */
  showVerdict(text, tier) {
    this.verdictText = text;
    this.lastMove.textContent = text;
    this.verdict.textContent = text;
    this.verdict.dataset.tier = tier;
    this.verdict.hidden = false;
    clearTimeout(this.verdictTimer);
    this.verdictTimer = setTimeout(() => (this.verdict.hidden = true), VERDICT_SHOWN_MS);
  }

  showLatency(text) {
    if (text) this.latency.textContent = text;
  }

  /** The practice loop's passes (coach.trendText); nothing without a loop. */
  showPasses(text) {
    this.passes.textContent = text;
  }

  /** After each score message of the session. */
  showScore(session) {
    const { tally } = session;
    const last = tally.last;
    setScore(this.score, last.score);
    setScore(this.badge, last.score);
    this.badge.hidden = false;
    setScore(this.average, tally.average);
    this.worst.textContent = last.worst ? partName(last.worst) : "–";
    this.showTicks(session);
    this.#draw(tally.recent(HISTORY_LENGTH));
    const verdict = this.verdictText ? ` Last move: ${this.verdictText}.` : "";
    this.announcer.say(liveSummaryText(tally) + verdict);
  }

  showTicks(session) {
    this.ticks.textContent = ticksText(tickCounts(session.tally, session.stats));
  }

  showFps(fps) {
    this.fps.textContent = `${fps.toFixed(1)} fps`;
  }

  /** The session is over: the badge goes, the numbers stay. */
  finish() {
    this.badge.hidden = true;
    this.verdict.hidden = true;
  }

  #draw(scores) {
    const canvas = this.history;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth * ratio;
    const height = canvas.clientHeight * ratio;
    if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.12)";
    ctx.lineWidth = ratio;
    for (const [, y] of historyPoints([FAIR, GOOD], 2, width, height, 0)) {
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(width, y);
      ctx.stroke();
    }
    if (scores.length < 2) return;
    ctx.strokeStyle = "#ff5c8a";
    ctx.lineWidth = 2 * ratio;
    ctx.beginPath();
    historyPoints(scores, HISTORY_LENGTH, width, height, ratio).forEach(([x, y], i) =>
      i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y),
    );
    ctx.stroke();
  }
}

/** A score into an element, coloured by its class. */
export function setScore(element, value) {
  element.textContent = scoreText(value);
  element.classList.remove("good", "fair", "poor");
  const kind = scoreClass(value);
  if (kind) element.classList.add(kind);
}
