// The page's pure helpers: the score tally, the words it shows, the live summary throttle.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Throttle } from "../../web/announcer.js";
import { exportFilename, failedTicksNotice, formatDuration, referenceLabel, slug } from "../../web/format.js";
import {
  historyPoints,
  liveSummaryText,
  partName,
  ScoreTally,
  scoreClass,
  scoreText,
  sessionSummary,
  tickCounts,
  ticksText,
} from "../../web/score.js";

function tallyOf(entries) {
  const tally = new ScoreTally();
  entries.forEach(([score, worst], tick) => tally.add({ tick, t: tick / 10, score, worst }));
  return tally;
}

test("the tally keeps every score, their average and the part furthest off most often", () => {
  const tally = tallyOf([
    [80, "l_wrist"],
    [60, "r_knee"],
    [70, "l_wrist"],
    [90, null],
  ]);
  assert.equal(tally.count, 4);
  assert.equal(tally.average, 75);
  assert.deepEqual(tally.last, { tick: 3, t: 0.3, score: 90, worst: null });
  assert.equal(tally.mostOftenOff(), "l_wrist");
  assert.deepEqual(tally.recent(2), [70, 90]);
  assert.ok(Number.isNaN(new ScoreTally().average));
  assert.equal(new ScoreTally().mostOftenOff(), null);
});

test("tick counts: the server's stats, never fewer processed than scores seen", () => {
  const tally = tallyOf([[50, null], [60, null], [70, null]]);
  assert.deepEqual(tickCounts(tally, null), { processed: 3, skipped: null });
  assert.deepEqual(tickCounts(tally, { processed: 2, skipped: 4 }), { processed: 3, skipped: 4 });
  assert.deepEqual(tickCounts(tally, { processed: 9, skipped: 0 }), { processed: 9, skipped: 0 });
  assert.equal(ticksText({ processed: 9, skipped: 0 }), "9");
  assert.equal(ticksText({ processed: 9, skipped: 2 }), "9 (2 skipped)");
});

test("the summary: skipped from the stats, else the ticks the dancer video went through less those processed", () => {
  const tally = tallyOf([[40, "r_ankle"], [80, "r_ankle"]]);
  assert.deepEqual(sessionSummary(tally, { processed: 2, skipped: 5 }, 0.65, 10), {
    average: 60,
    processed: 2,
    skipped: 5,
    worst: "right ankle",
  });
  // 0.65 s at 10 ticks/s went through ticks 0..6: 7 ticks, 2 processed
  assert.equal(sessionSummary(tally, null, 0.65, 10).skipped, 5);
  assert.equal(sessionSummary(tally, null, 0, 10).skipped, 0);
  const empty = sessionSummary(new ScoreTally(), null, 0, 10);
  assert.ok(Number.isNaN(empty.average));
  assert.equal(empty.worst, null);
});

test("the live summary says the latest score, the average and the part furthest off", () => {
  assert.equal(liveSummaryText(new ScoreTally()), "");
  const text = liveSummaryText(tallyOf([[70, null], [81.6, "l_hip"]]));
  assert.equal(text, "Score 82, average 76. Furthest off: left hip.");
  assert.equal(liveSummaryText(tallyOf([[64.4, null]])), "Score 64, average 64.");
});

test("part names, score classes and texts", () => {
  assert.equal(partName("l_wrist"), "left wrist");
  assert.equal(partName("r_big_toe"), "right big toe");
  assert.equal(partName("nose"), "nose");
  assert.equal(partName("neck_base"), "neck base");
  assert.deepEqual([100, 70, 69.9, 40, 39.9, 0].map(scoreClass), ["good", "good", "fair", "fair", "poor", "poor"]);
  assert.equal(scoreClass(Number.NaN), null);
  assert.equal(scoreText(69.5), "70");
  assert.equal(scoreText(Number.NaN), "–");
});

test("history points span the canvas: 0 at the bottom inset, 100 at the top inset, clamped", () => {
  assert.deepEqual(historyPoints([0, 100, 50, 150, -5], 5, 400, 100, 2), [
    [0, 98],
    [100, 2],
    [200, 50],
    [300, 2],
    [400, 98],
  ]);
  assert.deepEqual(historyPoints([40, 70], 2, 10, 100, 0), [
    [0, 60],
    [10, 30],
  ]);
});

test("the throttle lets one announcement through per interval and says how long to wait", () => {
  const throttle = new Throttle(5000);
  assert.equal(throttle.wait(0), 0);
  throttle.took(1000);
  assert.equal(throttle.wait(1000), 5000);
  assert.equal(throttle.wait(4000), 2000);
  assert.equal(throttle.wait(6000), 0);
  throttle.reset();
  assert.equal(throttle.wait(1001), 0);
});

test("durations, labels, file names and notices", () => {
  assert.equal(formatDuration(83.4), "1:23");
  assert.equal(formatDuration(59.6), "1:00");
  assert.equal(formatDuration(undefined), "?");
  const ref = { id: "abc", title: "Salsa, take 2!", duration_s: 79.5, fps: 10, pose: "tfpose" };
  assert.equal(referenceLabel(ref), "Salsa, take 2! · 1:20 · 10 ticks/s · tfpose");
  assert.equal(referenceLabel({ id: "abc", title: "", duration_s: null, fps: 5, pose: null }), "abc · ? · 5 ticks/s");
  assert.equal(slug("Salsa, take 2!"), "salsa-take-2");
  assert.equal(slug("!!!"), "session");
  assert.equal(exportFilename(ref, "scores.csv"), "dancesync-salsa-take-2-scores.csv");
  assert.deepEqual(failedTicksNotice(0), []);
  assert.deepEqual(failedTicksNotice(1), ["The server could not analyse 1 tick; they count as skipped."]);
  assert.deepEqual(failedTicksNotice(3), ["The server could not analyse 3 ticks; they count as skipped."]);
});
