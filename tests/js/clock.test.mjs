// The page's clock: media time from what the video reports, and the cadence of clock messages.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CLOCK_INTERVAL_MS, MAX_EXTRAPOLATION_S, MediaClock } from "../../web/clock.js";

const playing = (currentTime, now, extra = {}) => ({ currentTime, playing: true, rate: 1, now, ...extra });
const paused = (currentTime, now) => ({ currentTime, playing: false, rate: 1, now });

test("before any frame is seen, t is the video's currentTime", () => {
  const clock = new MediaClock();
  assert.equal(clock.time(playing(1.25, 1000)), 1.25);
  assert.equal(clock.time(paused(0.5, 2000)), 0.5);
});

test("playing, t runs on from the frame on screen by the wall time since it was shown", () => {
  const clock = new MediaClock();
  clock.frameShown(2.0, 10_000);
  assert.equal(clock.time(playing(2.0, 10_000)), 2.0);
  assert.equal(clock.time(playing(2.0, 10_120)), 2.12);
});

test("the run-on follows the playback rate", () => {
  const clock = new MediaClock();
  clock.frameShown(4.0, 0);
  assert.equal(clock.time(playing(4.0, 200, { rate: 0.5 })), 4.1);
  const fast = new MediaClock();
  fast.frameShown(4.0, 0);
  assert.equal(fast.time(playing(4.0, 200, { rate: 2 })), 4.4);
});

test("the run-on is capped, and currentTime wins when the estimate strays further", () => {
  const clock = new MediaClock();
  clock.frameShown(1.0, 0);
  // 2 s of wall time with no new frame: at most MAX_EXTRAPOLATION_S past the frame
  assert.equal(clock.time(playing(1.2, 2000)), 1.0 + MAX_EXTRAPOLATION_S);
  const strayed = new MediaClock();
  strayed.frameShown(1.0, 0);
  assert.equal(strayed.time(playing(3.0, 100)), 3.0);
});

test("while playing t never goes back; paused it follows currentTime", () => {
  const clock = new MediaClock();
  clock.frameShown(1.0, 0);
  assert.equal(clock.time(playing(1.0, 100)), 1.1);
  clock.frameShown(1.05, 100); // a frame whose media time is behind what was already sent
  assert.equal(clock.time(playing(1.05, 100)), 1.1);
  assert.equal(clock.time(paused(0.9, 200)), 0.9);
});

test("a seek lifts the floor: t goes back to the new position", () => {
  const clock = new MediaClock();
  clock.frameShown(8.0, 0);
  assert.equal(clock.time(playing(8.0, 0)), 8.0);
  clock.seeking();
  assert.equal(clock.time(playing(2.0, 50)), 2.0);
  clock.frameShown(2.0, 60);
  assert.equal(clock.time(playing(2.0, 110)), 2.05);
});

test("t is never negative nor past a known duration", () => {
  const clock = new MediaClock();
  assert.equal(clock.time(paused(-0.2, 0)), 0);
  clock.frameShown(9.9, 0);
  assert.equal(clock.time(playing(9.9, 400, { duration: 10 })), 10);
});

test("messages carry t to the millisecond and whether the video plays", () => {
  const clock = new MediaClock();
  clock.frameShown(1.0, 0);
  assert.deepEqual(clock.message(playing(1.0, 12.34567)), { type: "clock", t: 1.012, playing: true });
  assert.deepEqual(clock.message(paused(1.5, 100)), { type: "clock", t: 1.5, playing: false });
});

test("cadence: due every interval on a fixed schedule, late timers do not accumulate", () => {
  const clock = new MediaClock();
  clock.message(paused(0, 1000), { event: true });
  assert.equal(clock.delay(1000), CLOCK_INTERVAL_MS);
  // timers that fire 3 ms late each time still aim at 1050, 1100, 1150, ...
  let now = 1000;
  const due = [];
  for (let i = 1; i <= 5; i += 1) {
    now += clock.delay(now) + 3;
    clock.message(paused(0, now));
    due.push(now + clock.delay(now));
  }
  assert.deepEqual(due, [1100, 1150, 1200, 1250, 1300]);
});

test("cadence: an event message restarts the schedule; a long stall starts afresh", () => {
  const clock = new MediaClock({ interval: 50 });
  clock.message(paused(0, 0), { event: true });
  clock.message(paused(0, 20), { event: true }); // e.g. "pause" 20 ms after the last tick
  assert.equal(clock.delay(20), 50);
  assert.equal(clock.delay(80), 0);
  clock.message(paused(0, 1000)); // the tab was throttled for a second
  assert.equal(clock.delay(1000), 50);
});

test("the first message is due at once", () => {
  assert.equal(new MediaClock().delay(123), 0);
});

// Practice at a slower rate: the frames on screen advance at `rate` media seconds per wall second; the clock's
// messages must carry the media time of the frame on screen, so the server's tick (floor(t * fps)) is the
// dancer's tick at any rate.
for (const rate of [0.5, 0.75]) {
  test(`at rate ${rate} every message's t is the media time on screen, so ticks stay exact`, () => {
    const clock = new MediaClock();
    const fps = 10;
    const frame = 1 / 25; // a 25 fps dancer video
    const ticks = [];
    clock.message(playing(0, 0, { rate }), { event: true }); // t is rounded to the ms on the wire
    for (let wall = 0; wall <= 8000; wall += CLOCK_INTERVAL_MS) {
      const media = (wall / 1000) * rate; // where playback is at this wall time
      const shown = Math.floor(media / frame + 1e-9) * frame; // the frame on screen
      clock.frameShown(shown, (shown / rate) * 1000);
      const message = clock.message(playing(shown, wall, { rate }));
      assert.ok(Math.abs(message.t - media) <= 0.0005 + 1e-9, `t ${message.t} at media time ${media}`);
      ticks.push(Math.floor(message.t * fps + 1e-6));
    }
    const expected = [...new Set(ticks)];
    assert.deepEqual(expected, Array.from({ length: Math.floor(8 * rate * fps) + 1 }, (_, k) => k));
  });
}

test("an A-B loop at rate 0.75: on reaching B the seek to A is sent at once as A, a jump back", () => {
  const clock = new MediaClock();
  const rate = 0.75;
  const [a, b] = [2.0, 3.0];
  clock.frameShown(b, 10_000);
  const atB = clock.message(playing(b, 10_000, { rate }));
  assert.equal(atB.t, b);
  clock.seeking(); // the page sets currentTime = A
  const jump = clock.message(playing(a, 10_010, { rate }), { event: true }); // sent on "seeked"
  assert.deepEqual(jump, { type: "clock", t: a, playing: true });
  assert.equal(clock.delay(10_010), CLOCK_INTERVAL_MS);
  clock.frameShown(a, 10_020);
  const after = clock.message(playing(a, 10_020 + 400, { rate }));
  assert.equal(after.t, a + 0.3); // 400 ms at 0.75x: 0.3 media seconds, not 0.4
});
