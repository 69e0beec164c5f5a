// A scored recording as the page reads it back: the session CSVs as score and move messages.
import assert from "node:assert/strict";
import { test } from "node:test";

import { alignmentText, parseCsvRows, takeResults } from "../../web/takes.js";

const SCORES = "tick,time_s,score,raw,worst,limb,move\n0,0,93.50,97.10,l_wrist,left_arm,0\n1,0.1,12.00,80.00,,,0\n";
const MOVES = "move,start_s,end_s,tier,score,limb,offset_ms\n0,0,1.3,good,71.20,right_leg,-120\n1,1.3,2.6,miss,4.00,,\n";

test("a session CSV's rows are keyed by its header", () => {
  assert.deepEqual(parseCsvRows("a,b\n1,\n2,x\n"), [
    { a: "1", b: "" },
    { a: "2", b: "x" },
  ]);
  assert.deepEqual(parseCsvRows("a,b\n"), []);
});

test("a take's CSVs become the messages a live session would have received", () => {
  const record = { processed: 2, errors: 0, latency_ms: 180, latency_confident: true };
  const { scores, moves, stats } = takeResults(SCORES, MOVES, record);
  assert.deepEqual(scores[0], {
    type: "score",
    tick: 0,
    t: 0,
    score: 93.5,
    raw: 97.1,
    worst: "l_wrist",
    limb: "left_arm",
    move: 0,
  });
  assert.equal(scores[1].worst, null);
  assert.equal(scores[1].limb, null);
  assert.deepEqual(moves[0], {
    type: "move",
    move: 0,
    start: 0,
    end: 1.3,
    tier: "good",
    score: 71.2,
    limb: "right_leg",
    offset_ms: -120,
  });
  assert.equal(moves[1].offset_ms, null);
  assert.deepEqual(stats, {
    type: "stats",
    processed: 2,
    skipped: 0,
    errors: 0,
    latency_ms: 180,
    latency_confident: true,
  });
});

test("the alignment is said in words", () => {
  assert.equal(
    alignmentText({ offset_s: 0.437, confidence: 0.8718 }),
    "the song starts 0.44 s into your recording (confidence 0.87)",
  );
  assert.equal(
    alignmentText({ offset_s: -1.5, confidence: 0.9 }),
    "your recording starts 1.50 s into the song (confidence 0.90)",
  );
  assert.equal(alignmentText(null), "");
});
