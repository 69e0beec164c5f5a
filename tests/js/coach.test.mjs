// The coaching words and tallies, fed parsed messages as the server sends them (old and new shapes).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  latencyText,
  MoveLog,
  PassTracker,
  tierCountsText,
  timingText,
  trendText,
  verdictText,
} from "../../web/coach.js";
import { parseControlMessage } from "../../web/protocol.js";

const wire = (message) => parseControlMessage(JSON.stringify(message));
const score = (tick, t, value, extra = {}) => wire({ type: "score", tick, t, score: value, worst: null, ...extra });
const move = (index, start, end, tier, value, extra = {}) =>
  wire({ type: "move", move: index, start, end, tier, score: value, limb: null, offset_ms: null, ...extra });

test("verdicts: the tier, the timing for Good and OK, the limb for OK and Miss", () => {
  assert.equal(verdictText(move(0, 0, 1, "perfect", 95, { offset_ms: 120 })), "Perfect");
  assert.equal(verdictText(move(1, 1, 2, "good", 70, { offset_ms: 120 })), "Good · 120 ms late");
  assert.equal(verdictText(move(1, 1, 2, "good", 70, { offset_ms: 20, limb: "left_arm" })), "Good");
  assert.equal(verdictText(move(2, 2, 3, "ok", 40, { offset_ms: -90, limb: "right_leg" })), "OK · 90 ms early — right leg");
  assert.equal(verdictText(move(3, 3, 4, "miss", 5, { offset_ms: 300, limb: "left_arm" })), "Miss — left arm");
  assert.equal(verdictText(move(3, 3, 4, "miss", 5)), "Miss");
  assert.equal(timingText(null), null);
  assert.equal(timingText(-49), "on time");
});

test("the latency is said once the server is confident of it", () => {
  const stats = (ms, confident) => wire({ type: "stats", processed: 1, latency_ms: ms, latency_confident: confident });
  assert.equal(latencyText(stats(180, true)), "you are 180 ms behind the music");
  assert.equal(latencyText(stats(-120, true)), "you are 120 ms ahead of the music");
  assert.equal(latencyText(stats(10, true)), "you are right on the music");
  assert.equal(latencyText(stats(180, false)), null);
  assert.equal(latencyText(wire({ type: "stats", processed: 1 })), null); // an older server
  assert.equal(latencyText(null), null);
});

test("the move log: a later verdict replaces an earlier, tier counts, the three worst moves", () => {
  const log = new MoveLog();
  [
    move(0, 0, 1, "perfect", 96),
    move(1, 1, 2, "miss", 10),
    move(2, 2, 3, "good", 70),
    move(3, 3, 4, "ok", 35),
    move(4, 4, 5, "miss", 10),
    move(2, 2, 3, "ok", 45),
  ].forEach((m) => log.addMove(m));
  assert.deepEqual(log.tierCounts(), { perfect: 1, good: 0, ok: 2, miss: 2 });
  assert.deepEqual(log.worst(3).map((m) => m.move), [1, 4, 3]);
  assert.equal(tierCountsText(log.tierCounts()), "1 Perfect · 0 Good · 2 OK · 2 Miss");
});

test("limbs per tick: the server's limb, else the limb of the part furthest off (older servers)", () => {
  const log = new MoveLog();
  log.addScore(score(0, 0, 50, { limb: "left_leg", worst: "r_wrist" }));
  log.addScore(score(1, 0.1, 50, { worst: "r_wrist" }));
  log.addScore(score(2, 0.2, 50, { worst: "nose" }));
  log.addScore(score(3, 0.3, 50));
  assert.deepEqual(log.limbTicks, { left_arm: 0, right_arm: 1, left_leg: 1, right_leg: 0, torso: 0, head: 1 });
});

test("passes of an A-B loop: ticks between A and B, a new pass when the loop goes back, moves to the pass that danced them", () => {
  const passes = new PassTracker();
  passes.setLoop({ a: 1.0, b: 2.0 });
  const fps = 10;
  const run = (ticks, value) => ticks.forEach((k) => passes.addScore(score(k, k / fps, value)));
  run([8, 9], 99); // before A: not counted
  run([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 50); // pass 1: 11 ticks
  passes.addMove(move(3, 1.0, 1.5, "ok", 50));
  run([10, 11, 12], 80); // back at A: pass 2 starts
  passes.addMove(move(4, 1.5, 2.0, "miss", 50)); // the last move of pass 1, its verdict after the seek
  run([13, 14, 15, 16, 17, 18, 19, 20], 80);
  passes.addMove(move(3, 1.0, 1.5, "good", 80));
  passes.addMove(move(4, 1.5, 2.0, "good", 80));
  passes.addMove(move(5, 2.0, 2.5, "perfect", 80)); // its middle is past B: not in the loop
  run([21, 22], 10); // past B (a late seek): not counted
  const summary = passes.summary();
  assert.deepEqual(
    summary.map(({ pass, ticks, mean, tiers }) => [pass, ticks, mean, tiers]),
    [
      [1, 11, 50, { perfect: 0, good: 0, ok: 1, miss: 1 }],
      [2, 11, 80, { perfect: 0, good: 2, ok: 0, miss: 0 }],
    ],
  );
  assert.equal(trendText(summary), "Pass 1: 50 · Pass 2: 80 (+30)");
  passes.setLoop(null);
  run([10, 11], 50);
  assert.deepEqual(passes.summary(), []);
});

test("the song chart: tick scores on one axis with each move's score over its span in its tier", async () => {
  const { songChartData, worstTickIn } = await import("../../web/coach.js");
  const scores = [0, 1, 2, 3].map((k) => ({ tick: k, t: k / 2, score: [90, 40, 60, 20][k] }));
  const moves = [
    { move: 0, start: 0, end: 1, tier: "good", score: 65 },
    { move: 1, start: 1, end: 2, tier: "miss", score: 20 },
  ];
  const data = songChartData(scores, moves);
  assert.deepEqual(data.x, [0, 0.5, 1, 1.5, 2]);
  assert.deepEqual(data.score, [90, 40, 60, 20, null]);
  assert.deepEqual(data.tiers.good, [65, 65, 65, null, null]);
  assert.deepEqual(data.tiers.miss, [null, null, 20, 20, 20]);
  assert.deepEqual(data.tiers.perfect, [null, null, null, null, null]);
  assert.equal(worstTickIn(scores, 0, 1).tick, 1);
  assert.equal(worstTickIn(scores, 5, 6), null);
  assert.equal(worstTickIn(scores, 0, 2, (s) => s.tick !== 3 && s.tick !== 1).tick, 2); // e.g. where the user was seen
  assert.equal(worstTickIn(scores, 0, 1, () => false).tick, 1);
});
