// What the page says to coach the dancer: each move's verdict, the latency, the per-limb and tier counts, the
// worst moves, and the passes of a practice loop. Pure: no DOM; fed the parsed messages of protocol.js.
// Every field the scoring server added later (move, limb, raw, latency) is optional: without them the page shows
// what it can (the limb from the part furthest off, no verdicts, no latency).

import { TIERS } from "./protocol.js";
import { limbName, limbOfPart, LIMBS } from "./skeleton.js";

export { TIERS } from "./protocol.js";
export const TIER_NAMES = { perfect: "Perfect", good: "Good", ok: "OK", miss: "Miss" };

/** Offsets under this many ms read as "on time" (less than a tick at 10 ticks/s is not worth a word). */
export const ON_TIME_MS = 50;

/** "120 ms late", "80 ms early", "on time"; null when unknown. Positive = the user was late. */
export function timingText(offsetMs) {
  if (!Number.isFinite(offsetMs)) return null;
  if (Math.abs(offsetMs) < ON_TIME_MS) return "on time";
  return `${Math.round(Math.abs(offsetMs))} ms ${offsetMs > 0 ? "late" : "early"}`;
}

/**
 * A move's verdict as shown: the tier; for Good and OK the timing when it is off; for OK and Miss the limb to fix.
 * "Perfect", "Good · 120 ms late", "OK · 90 ms early — right leg", "Miss — left arm".
 */
export function verdictText({ tier, offset_ms: offset, limb }) {
  let text = TIER_NAMES[tier] ?? tier;
  const timing = timingText(offset);
  if ((tier === "good" || tier === "ok") && timing && timing !== "on time") text += ` · ${timing}`;
  if ((tier === "ok" || tier === "miss") && limb) text += ` — ${limbName(limb)}`;
  return text;
}

/** "you are 180 ms behind the music" once the server is confident, else null. */
export function latencyText(stats) {
  if (!stats || !stats.latency_confident || !Number.isFinite(stats.latency_ms)) return null;
  const ms = Math.round(stats.latency_ms);
  if (Math.abs(ms) < ON_TIME_MS) return "you are right on the music";
  return `you are ${Math.abs(ms)} ms ${ms > 0 ? "behind" : "ahead of"} the music`;
}

/** The limb a score message names: its `limb`, else the limb of its `worst` part (older servers). */
export function limbOfScore(score) {
  if (score.limb) return score.limb;
  return score.worst ? limbOfPart(score.worst) : null;
}

export const zeroTiers = () => Object.fromEntries(TIERS.map((tier) => [tier, 0]));

/** The session's move verdicts (a later verdict for the same move replaces the earlier) and per-limb counts. */
export class MoveLog {
  constructor() {
    this.moves = new Map(); // move → the move message
    this.limbTicks = Object.fromEntries(LIMBS.map((limb) => [limb, 0]));
  }

  addMove(move) {
    this.moves.set(move.move, move);
  }

  /** A score message: counts the limb most off at that tick. */
  addScore(score) {
    const limb = limbOfScore(score);
    if (limb && limb in this.limbTicks) this.limbTicks[limb] += 1;
  }

  get list() {
    return [...this.moves.values()].sort((a, b) => a.move - b.move);
  }

  tierCounts() {
    const counts = zeroTiers();
    for (const { tier } of this.moves.values()) if (tier in counts) counts[tier] += 1;
    return counts;
  }

  /** The `n` lowest-scoring moves, lowest first (the earlier move first on a tie). */
  worst(n = 3) {
    return this.list.sort((a, b) => a.score - b.score || a.move - b.move).slice(0, n);
  }
}

/**
 * The passes of an A-B practice loop. A pass is the run of ticks scored between A and B: scores outside [A, B]
 * are not counted, and a score whose tick is below the last one of the current pass starts the next pass (the
 * loop went back to A). A move's verdict counts when the move's middle lies in [A, B], for the latest pass that
 * scored a tick inside the move (so the verdict of the move just before B, arriving after the seek to A, still
 * goes to the pass that danced it).
 */
export class PassTracker {
  constructor() {
    this.loop = null; // { a, b } in media seconds
    this.passes = [];
  }

  /** A new loop (or none) starts a new series of passes. */
  setLoop(loop) {
    this.loop = loop && loop.b > loop.a ? { a: loop.a, b: loop.b } : null;
    this.passes = [];
  }

  #inside(t) {
    return this.loop && t >= this.loop.a - 1e-9 && t <= this.loop.b + 1e-9;
  }

  addScore({ tick, t, score }) {
    if (!this.#inside(t)) return;
    let pass = this.passes.at(-1);
    if (!pass || tick < pass.lastTick) {
      pass = { ticks: 0, sum: 0, lastTick: -1, times: [], tiers: zeroTiers() };
      this.passes.push(pass);
    }
    pass.ticks += 1;
    pass.sum += score;
    pass.lastTick = tick;
    pass.times.push(t);
  }

  addMove({ start, end, tier }) {
    if (!this.loop || !this.#inside((start + end) / 2) || !TIERS.includes(tier)) return;
    for (let i = this.passes.length - 1; i >= 0; i -= 1) {
      if (this.passes[i].times.some((t) => t >= start && t < end)) {
        this.passes[i].tiers[tier] += 1;
        return;
      }
    }
  }

  /** `[{ pass: 1.., ticks, mean, tiers }]`. */
  summary() {
    return this.passes.map((p, i) => ({ pass: i + 1, ticks: p.ticks, mean: p.sum / p.ticks, tiers: { ...p.tiers } }));
  }
}

/** "Pass 1: 58 · Pass 2: 64 (+6)": each pass's mean, and the change from the pass before. */
export function trendText(passes) {
  return passes
    .map(({ pass, mean }, i) => {
      const change = i > 0 ? Math.round(mean) - Math.round(passes[i - 1].mean) : null;
      const delta = change === null ? "" : ` (${change >= 0 ? "+" : "−"}${Math.abs(change)})`;
      return `Pass ${pass}: ${Math.round(mean)}${delta}`;
    })
    .join(" · ");
}

/** "2 Perfect · 3 Good · 0 OK · 1 Miss". */
export function tierCountsText(counts) {
  return TIERS.map((tier) => `${counts[tier] ?? 0} ${TIER_NAMES[tier]}`).join(" · ");
}

/**
 * The report's "score along the song" data, on one x axis (uPlot's aligned arrays): the tick times, each with its
 * score, and per tier the move's score across the move's span (null outside moves of that tier), so each move
 * shows as a step in its tier's colour. `scores`: [{ t, score }], `moves`: [{ start, end, tier, score }].
 */
export function songChartData(scores, moves) {
  const xs = [...new Set([...scores.map((s) => s.t), ...moves.flatMap((m) => [m.start, m.end])])].sort((a, b) => a - b);
  const byT = new Map(scores.map((s) => [s.t, s.score]));
  const tiers = Object.fromEntries(TIERS.map((tier) => [tier, xs.map(() => null)]));
  for (const m of moves) {
    if (!(m.tier in tiers)) continue;
    xs.forEach((x, i) => {
      if (x >= m.start && x <= m.end) tiers[m.tier][i] = m.score;
    });
  }
  return { x: xs, score: xs.map((x) => byT.get(x) ?? null), tiers };
}

/** The score of `scores` (each { tick, t, score }) lowest within [start, end) among those `usable(score)` accepts,
 * else among all in the move; null when none was scored. */
export function worstTickIn(scores, start, end, usable = () => true) {
  const inside = scores.filter((s) => s.t >= start && s.t < end);
  const lowest = (list) => list.reduce((worst, s) => (!worst || s.score < worst.score ? s : worst), null);
  return lowest(inside.filter(usable)) ?? lowest(inside);
}
