import assert from "node:assert/strict";
import { test } from "node:test";

import { isProfileToken, newProfileToken, profileToken, sessionRow, sparklinePoints } from "../../web/progress.js";
import { offerBody } from "../../web/protocol.js";

test("a new profile token is 32 random bytes in unpadded base64url", () => {
  const token = newProfileToken((bytes) => bytes.fill(0xfb));
  assert.equal(token, "-_v7".repeat(10) + "-_s");
  assert.equal(token.length, 43);
  assert.ok(isProfileToken(token));
  assert.ok(isProfileToken(newProfileToken()));
  assert.notEqual(newProfileToken(), newProfileToken());
  for (const bad of [token.slice(1), `${token}A`, `${token.slice(1)}=`, null, 42]) assert.ok(!isProfileToken(bad));
});

test("the profile token is kept in storage and replaced only when malformed", () => {
  const kept = new Map();
  const storage = { getItem: (k) => kept.get(k) ?? null, setItem: (k, v) => kept.set(k, v) };
  const first = profileToken(storage);
  assert.ok(isProfileToken(first));
  assert.equal(profileToken(storage), first);
  kept.set("dancesync.profile", "tampered");
  const second = profileToken(storage);
  assert.ok(isProfileToken(second) && second !== first);
  const broken = { getItem: () => { throw new Error("denied"); }, setItem: () => {} };
  assert.equal(profileToken(broken), null);
});

test("the offer carries the profile only when there is one", () => {
  assert.equal(offerBody({ sdp: "v=0", reference: "r", profile: "p" }).profile, "p");
  assert.ok(!("profile" in offerBody({ sdp: "v=0", reference: "r" })));
});

test("sparkline points: oldest left, 100 at the top, sessions without a score left out", () => {
  assert.equal(sparklinePoints([0, 50, 100], 104, 54), "2,52 52,27 102,2");
  assert.equal(sparklinePoints([25, null, 75], 104, 54), "2,39.5 102,14.5");
  assert.equal(sparklinePoints([120], 10, 10), "2,2");
  assert.equal(sparklinePoints([], 10, 10), "");
});

test("a session's row", () => {
  const entry = { session: "s", started: 0, mean_score: 61.256, ticks: 12, files: ["keypoints.csv", "scores.csv"] };
  const row = sessionRow(entry, "en-GB");
  assert.equal(row.score, "61.3");
  assert.equal(row.ticks, "12");
  assert.deepEqual(row.files, ["keypoints.csv", "scores.csv"]);
  assert.equal(sessionRow({ ...entry, mean_score: null }).score, "–");
});
