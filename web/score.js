// A session's scores as the page keeps and words them. Pure: no DOM.

/** Scores at or above GOOD read as good, at or above FAIR as fair, below as poor (the page's colours). */
export const GOOD = 70;
export const FAIR = 40;

/** Every score message of a session, in order, with the running sum and how often each part was furthest off. */
export class ScoreTally {
  constructor() {
    this.scores = []; // { tick, t, score, worst }
    this.sum = 0;
    this.worstCounts = new Map();
  }

  add({ tick, t, score, worst }) {
    this.scores.push({ tick, t, score, worst });
    this.sum += score;
    if (worst) this.worstCounts.set(worst, (this.worstCounts.get(worst) ?? 0) + 1);
  }

  get count() {
    return this.scores.length;
  }

  get last() {
    return this.scores.at(-1) ?? null;
  }

  /** NaN before the first score. */
  get average() {
    return this.count ? this.sum / this.count : NaN;
  }

  /** The part furthest off most often (the first to reach the top count on a tie); null before any. */
  mostOftenOff() {
    let best = null;
    for (const [part, count] of this.worstCounts) if (!best || count > best[1]) best = [part, count];
    return best && best[0];
  }

  /** The last `n` scores, oldest first. */
  recent(n) {
    return this.scores.slice(-n).map((entry) => entry.score);
  }
}

/** Processed and skipped tick counts: the server's stats when it sent any (never fewer processed than scores
 * seen, since a score can arrive before the stats that count it), else the scores seen and skipped unknown. */
export function tickCounts(tally, stats) {
  const processed = Math.max(stats?.processed ?? 0, tally.count);
  return { processed, skipped: stats ? stats.skipped : null };
}

/** "72 (3 skipped)" or "72". */
export function ticksText({ processed, skipped }) {
  return skipped ? `${processed} (${skipped} skipped)` : String(processed);
}

/**
 * The end-of-session figures. Ticks skipped are the server's count when it sent stats; otherwise the ticks the
 * dancer video went through (`endTime` s at `fps` ticks/s, tick 0 at t = 0) less those processed.
 */
export function sessionSummary(tally, stats, endTime, fps) {
  const { processed, skipped } = tickCounts(tally, stats);
  const elapsed = Number.isFinite(endTime) && fps > 0 ? Math.floor(endTime * fps) + 1 : processed;
  const worst = tally.mostOftenOff();
  return {
    average: tally.average,
    processed,
    skipped: skipped ?? Math.max(0, elapsed - processed),
    worst: worst && partName(worst),
  };
}

/** The one sentence a screen reader hears every few seconds while dancing. */
export function liveSummaryText(tally) {
  const last = tally.last;
  if (!last) return "";
  const worst = last.worst ? ` Furthest off: ${partName(last.worst)}.` : "";
  return `Score ${Math.round(last.score)}, average ${Math.round(tally.average)}.${worst}`;
}

/** "l_wrist" → "left wrist", "nose" → "nose". */
export function partName(key) {
  const words = String(key).split("_");
  const side = { l: "left", r: "right" }[words[0]];
  if (side && words.length > 1) words[0] = side;
  return words.join(" ");
}

/** "good", "fair" or "poor"; null for a missing score. */
export function scoreClass(value) {
  if (!Number.isFinite(value)) return null;
  if (value >= GOOD) return "good";
  return value >= FAIR ? "fair" : "poor";
}

/** A score as shown: a whole number, or "–" when there is none. */
export function scoreText(value) {
  return Number.isFinite(value) ? String(Math.round(value)) : "–";
}

/**
 * The history sparkline's points for a `width` x `height` canvas holding `length` scores edge to edge: x from 0,
 * y from the bottom (0) to the top (100), inset by `inset` px so a line at 0 or 100 stays visible.
 */
export function historyPoints(scores, length, width, height, inset = 1) {
  const step = length > 1 ? width / (length - 1) : 0;
  return scores.map((score, i) => {
    const clamped = Math.min(Math.max(score, 0), 100);
    return [i * step, height - inset - (clamped / 100) * (height - 2 * inset)];
  });
}
