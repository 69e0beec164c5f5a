// The dancer video's clock, sent to the server on `control` so it scores the user against the dancer's pose of
// the moment on screen. The server decides the tick from `t` alone, so `t` must be the media time of the frame
// the user sees, at any playback rate, across pauses, seeks and stalls.
//
// MediaClock is the pure core (time passed in, no DOM): what `t` is and when the next message is due.
// attachClock is the thin shell that feeds it from a <video> element and sends its messages.

import { clockMessage } from "./protocol.js";

/** Clock messages 20 times a second while nothing happens (the server needs at least 10). */
export const CLOCK_INTERVAL_MS = 50;

/** How far past the last dancer frame shown (in media seconds) the clock may run on its own. */
export const MAX_EXTRAPOLATION_S = 0.5;

/**
 * Media time from what the video reports. Rules:
 * - Paused, stalled, or before any frame was seen: the video's `currentTime`.
 * - Playing with a frame seen: that frame's media time plus the wall time since it was shown, scaled by the
 *   playback rate and capped at `maxExtrapolation`; `currentTime` again when that strays further from it.
 * - While playing, `t` never goes back (frame-timing jitter); a seek (`seeking()`) lifts that floor.
 * - `t` is never below 0, nor past the duration when it is known.
 *
 * Cadence: a message is due every `interval` ms on a fixed schedule (timer lateness does not accumulate); a
 * message sent on an event (play, pause, seek, ...) restarts the schedule from that moment.
 */
export class MediaClock {
  #shown = null; // { mediaTime, at } of the last dancer frame on screen
  #floor = 0;
  #due = null;

  constructor({ interval = CLOCK_INTERVAL_MS, maxExtrapolation = MAX_EXTRAPOLATION_S } = {}) {
    this.interval = interval;
    this.maxExtrapolation = maxExtrapolation;
  }

  /** A dancer frame with media time `mediaTime` (s) was put on screen at wall time `at` (ms). */
  frameShown(mediaTime, at) {
    this.#shown = { mediaTime, at };
  }

  /** The video is seeking: forget the frame seen and the floor. */
  seeking() {
    this.#shown = null;
    this.#floor = 0;
  }

  /** The media time (s) now; `sample` is { currentTime, playing, rate, duration, now (ms) }. */
  time({ currentTime, playing, rate = 1, duration = NaN, now }) {
    const t = this.#estimate(currentTime, playing, rate, now);
    this.#floor = playing ? Math.max(t, this.#floor) : t;
    const end = Number.isFinite(duration) ? duration : Infinity;
    return Math.min(Math.max(this.#floor, 0), end);
  }

  #estimate(currentTime, playing, rate, now) {
    if (!this.#shown || !playing) return currentTime;
    const ahead = ((now - this.#shown.at) / 1000) * rate;
    const t = this.#shown.mediaTime + Math.min(Math.max(ahead, 0), this.maxExtrapolation);
    return Math.abs(t - currentTime) > this.maxExtrapolation ? currentTime : t;
  }

  /** The clock message for `sample`, and the schedule moved on: `event` says it was sent on a video event. */
  message(sample, { event = false } = {}) {
    const { now } = sample;
    if (event || this.#due === null) this.#due = now + this.interval;
    else {
      this.#due += this.interval;
      if (this.#due <= now) this.#due = now + this.interval; // fell far behind (a throttled tab): start afresh
    }
    return clockMessage(this.time(sample), sample.playing);
  }

  /** Milliseconds from `now` until the next message is due (0 when it is already). */
  delay(now) {
    return this.#due === null ? 0 : Math.max(0, this.#due - now);
  }
}

/** Video events after which the server hears at once. */
const EVENTS = ["play", "playing", "pause", "seeked", "waiting", "ratechange", "ended"];

export function isPlaying(video) {
  return !video.paused && !video.ended && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA;
}

/**
 * Drive `send(message)` from `video` until `stop()`. With requestVideoFrameCallback the clock follows the frames
 * on screen; without it (older browsers), `currentTime`. `time()` reads the clock without sending.
 */
export function attachClock(video, send, clock = new MediaClock()) {
  const sample = () => ({
    currentTime: video.currentTime,
    playing: isPlaying(video),
    rate: video.playbackRate,
    duration: video.duration,
    now: performance.now(),
  });
  let timer = null;
  let frameRequest = null;
  const watchesFrames = typeof video.requestVideoFrameCallback === "function";
  const onFrame = (now, metadata) => {
    clock.frameShown(metadata.mediaTime, metadata.expectedDisplayTime ?? now);
    frameRequest = video.requestVideoFrameCallback(onFrame);
  };
  const emit = (event) => {
    clearTimeout(timer);
    send(clock.message(sample(), { event }));
    timer = setTimeout(() => emit(false), clock.delay(performance.now()));
  };
  const onEvent = () => emit(true);
  const onSeeking = () => clock.seeking();

  if (watchesFrames) frameRequest = video.requestVideoFrameCallback(onFrame);
  EVENTS.forEach((type) => video.addEventListener(type, onEvent));
  video.addEventListener("seeking", onSeeking);
  emit(true);
  return {
    time: () => clock.time(sample()),
    stop() {
      clearTimeout(timer);
      EVENTS.forEach((type) => video.removeEventListener(type, onEvent));
      video.removeEventListener("seeking", onSeeking);
      if (watchesFrames && frameRequest !== null) video.cancelVideoFrameCallback(frameRequest);
    },
  };
}
