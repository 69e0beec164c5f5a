// The wire messages the page builds and reads (docs/api.md; the server's side is stream/protocol.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  clockMessage,
  errorText,
  MAX_REASON_LENGTH,
  offerBody,
  parseAnswer,
  parseControlMessage,
  ProtocolError,
} from "../../web/protocol.js";

test("clock messages: t rounded to the millisecond, never negative or non-finite", () => {
  assert.deepEqual(clockMessage(1.23456, true), { type: "clock", t: 1.235, playing: true });
  assert.deepEqual(clockMessage(-3, 0), { type: "clock", t: 0, playing: false });
  assert.deepEqual(clockMessage(Number.NaN, false), { type: "clock", t: 0, playing: false });
  assert.deepEqual(clockMessage(Infinity, true), { type: "clock", t: 0, playing: true });
});

test("offer bodies name the reference and leave fps and pose to the server unless given", () => {
  assert.deepEqual(offerBody({ sdp: "v=0", reference: "abc", mirror: false }), {
    sdp: "v=0",
    type: "offer",
    reference: "abc",
    mirror: false,
  });
  assert.deepEqual(offerBody({ sdp: "v=0", reference: "abc", fps: 5, pose: "tfpose" }), {
    sdp: "v=0",
    type: "offer",
    reference: "abc",
    mirror: true,
    fps: 5,
    pose: "tfpose",
  });
  assert.equal(offerBody({ sdp: "v=0", reference: "abc", mosaic: false }).mosaic, false);
  assert.ok(!("mosaic" in offerBody({ sdp: "v=0", reference: "abc" })));
});

test("answers: what a session needs, warnings only as strings", () => {
  const answer = parseAnswer({
    sdp: "v=0",
    type: "answer",
    session: "s",
    token: "t",
    pose: "movenet-lightning",
    warnings: ["a", 3, null],
  });
  assert.deepEqual(answer, {
    sdp: "v=0",
    type: "answer",
    session: "s",
    token: "t",
    pose: "movenet-lightning",
    warnings: ["a"],
  });
  assert.equal(parseAnswer({ sdp: "v=0", type: "answer", session: "s", token: "t" }).pose, null);
  const bad = [null, [], { sdp: "v=0", type: "offer", session: "s", token: "t" }, { sdp: "v=0", type: "answer" }];
  for (const body of bad) assert.throws(() => parseAnswer(body), ProtocolError);
});

test("score messages are typed; the score is kept within 0..100; the newer fields are optional", () => {
  const text = JSON.stringify({ type: "score", tick: 12, t: 1.2, score: 87.5, worst: "l_wrist" });
  const old = { type: "score", tick: 12, t: 1.2, score: 87.5, worst: "l_wrist", raw: null, limb: null, move: null };
  assert.deepEqual(parseControlMessage(text), old);
  const none = parseControlMessage('{"type":"score","tick":0,"t":0,"score":101,"worst":null}');
  assert.deepEqual(none, { type: "score", tick: 0, t: 0, score: 100, worst: null, raw: null, limb: null, move: null });
  const full = { type: "score", tick: 3, t: 0.3, score: 40, raw: 120, worst: "r_knee", limb: "right_leg", move: 2 };
  assert.deepEqual(parseControlMessage(JSON.stringify(full)), { ...full, raw: 100 });
});

test("move messages: the verdict of one move; a malformed one is null", () => {
  const move = { type: "move", move: 4, start: 2.5, end: 3.1, tier: "good", score: 71.5, limb: "left_arm", offset_ms: 120 };
  assert.deepEqual(parseControlMessage(JSON.stringify(move)), move);
  const bare = parseControlMessage('{"type":"move","move":0,"start":0,"end":1,"tier":"miss","score":3}');
  assert.deepEqual(bare, { type: "move", move: 0, start: 0, end: 1, tier: "miss", score: 3, limb: null, offset_ms: null });
  assert.equal(parseControlMessage('{"type":"move","move":0,"start":0,"end":1,"tier":"super","score":3}'), null);
  assert.equal(parseControlMessage('{"type":"move","move":-1,"start":0,"end":1,"tier":"ok","score":3}'), null);
});

test("stats messages: the latency only counts as confident when the server says so and gives one", () => {
  const confident = parseControlMessage('{"type":"stats","processed":1,"latency_ms":180,"latency_confident":true}');
  assert.equal(confident.latency_ms, 180);
  assert.equal(confident.latency_confident, true);
  const unsure = parseControlMessage('{"type":"stats","processed":1,"latency_ms":180,"latency_confident":false}');
  assert.equal(unsure.latency_confident, false);
  const missing = parseControlMessage('{"type":"stats","processed":1,"latency_ms":null,"latency_confident":true}');
  assert.deepEqual([missing.latency_ms, missing.latency_confident], [null, false]);
});

test("stats messages: counts required to be counts, rates null when missing", () => {
  const text = JSON.stringify({ type: "stats", processed: 40, skipped: 2, errors: 1, fps: 29.5, tick_fps: 10 });
  assert.deepEqual(parseControlMessage(text), {
    type: "stats",
    processed: 40,
    skipped: 2,
    errors: 1,
    fps: 29.5,
    webcam_fps: null,
    tick_fps: 10,
    inference_ms: null,
    latency_ms: null,
    latency_confident: false,
  });
  assert.equal(parseControlMessage('{"type":"stats","processed":-1}'), null);
  assert.equal(parseControlMessage('{"type":"stats","skipped":"2"}'), null);
});

test("end messages carry the server's reason, trimmed and bounded; a missing one gets a default", () => {
  assert.deepEqual(parseControlMessage('{"type":"end","reason":"  The server is shutting down. "}'), {
    type: "end",
    reason: "The server is shutting down.",
  });
  assert.equal(parseControlMessage('{"type":"end"}').reason, "The server ended the session.");
  const long = parseControlMessage(JSON.stringify({ type: "end", reason: "x".repeat(5000) }));
  assert.equal(long.reason.length, MAX_REASON_LENGTH);
});

test("anything else on the channel is null: garbage, wrong types, unknown kinds", () => {
  const bad = [
    "",
    "not json",
    "[]",
    "null",
    "42",
    '"score"',
    "{}",
    '{"type":"hello"}',
    '{"type":"score","tick":1.5,"t":0,"score":50}',
    '{"type":"score","tick":1,"t":"0","score":50}',
    '{"type":"score","tick":1,"t":0,"score":null}',
    '{"type":"score","tick":1,"t":0,"score":50,"worst":7}',
    '{"type":"score","tick":-1,"t":0,"score":50}',
  ];
  for (const text of bad) assert.equal(parseControlMessage(text), null, text);
  assert.equal(parseControlMessage(new ArrayBuffer(8)), null);
});

test("error text: the server's JSON error or its plain text, with the status; tags and space squeezed", () => {
  assert.equal(errorText('{"error": "no such reference"}', 404), "no such reference (HTTP 404)");
  assert.equal(errorText("<h1>Bad   Gateway</h1>", 502), "Bad Gateway (HTTP 502)");
  assert.equal(errorText("", 503, "Service Unavailable"), "The server answered HTTP 503 Service Unavailable");
  assert.equal(errorText("x".repeat(400), 400), `${"x".repeat(300)} (HTTP 400)`);
});

test("keypoints-only offers and pose messages", () => {
  const body = offerBody({ sdp: "v=0", reference: "abc", returnedVideo: false });
  assert.equal(body.returned_video, false);
  assert.equal("returned_video" in offerBody({ sdp: "v=0", reference: "abc" }), false); // the default: video back
  const keypoints = [[0.25, 0.5, 0.9], ...Array(17).fill(null)];
  const pose = { type: "pose", tick: 4, t: 0.4, keypoints, limb: "left_arm" };
  assert.deepEqual(parseControlMessage(JSON.stringify(pose)), pose);
  assert.deepEqual(parseControlMessage(JSON.stringify({ ...pose, limb: null })), { ...pose, limb: null });
  for (const bad of [{ ...pose, keypoints: [[0.1, 0.2]] }, { ...pose, keypoints: "x" }, { ...pose, tick: -1 }]) {
    assert.equal(parseControlMessage(JSON.stringify(bad)), null);
  }
});
