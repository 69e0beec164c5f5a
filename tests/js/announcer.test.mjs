// The spoken live summary: the first text at once, then only the latest one per interval, never a repeat.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Announcer, Throttle } from "../../web/announcer.js";

/** A stand-in for the aria-live element that records what is written to it. */
function region() {
  const writes = [];
  let text = "";
  let waiter = null;
  return {
    writes,
    get textContent() {
      return text;
    },
    set textContent(value) {
      text = value;
      writes.push(value);
      waiter?.();
    },
    nextWrite: () => new Promise((resolve) => (waiter = resolve)),
  };
}

test("updates within an interval collapse into the latest one, written once the interval is over", async () => {
  const live = region();
  const announcer = new Announcer(live, new Throttle(200));
  announcer.say("Score 50, average 50.");
  announcer.say("Score 60, average 55.");
  announcer.say("Score 70, average 60.");
  assert.deepEqual(live.writes, ["Score 50, average 50."]);
  await live.nextWrite();
  assert.deepEqual(live.writes, ["Score 50, average 50.", "Score 70, average 60."]);
});

test("the same text is not written twice, and clear() empties the region and drops what is pending", async () => {
  const live = region();
  const announcer = new Announcer(live, new Throttle(0));
  announcer.say("Score 50, average 50.");
  announcer.say("Score 50, average 50.");
  assert.deepEqual(live.writes, ["Score 50, average 50."]);
  const slow = new Announcer(live, new Throttle(60_000));
  slow.say("first");
  slow.say("pending");
  slow.clear();
  assert.deepEqual(live.writes, ["Score 50, average 50.", "first", ""]);
  slow.say("after clear");
  assert.equal(live.textContent, "after clear");
  slow.clear();
});
