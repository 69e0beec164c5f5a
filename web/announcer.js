// One polite live region for what changes many times a second (the score): a screen reader hears a summary
// at most every few seconds, and the latest one once things settle, instead of every update.

/** Announcements at most this often. */
export const ANNOUNCE_INTERVAL_MS = 5000;

/** Leading and trailing throttle, pure: `wait(now)` is 0 when an announcement may go now, else the ms left. */
export class Throttle {
  #last = -Infinity;

  constructor(interval = ANNOUNCE_INTERVAL_MS) {
    this.interval = interval;
  }

  wait(now) {
    return Math.max(0, this.#last + this.interval - now);
  }

  /** An announcement went out at `now`. */
  took(now) {
    this.#last = now;
  }

  reset() {
    this.#last = -Infinity;
  }
}

/** Writes the latest text given to `say` into `region` (an aria-live element), throttled, never twice the same. */
export class Announcer {
  #pending = null;
  #timer = null;

  constructor(region, throttle = new Throttle()) {
    this.region = region;
    this.throttle = throttle;
  }

  say(text) {
    this.#pending = text;
    if (this.#timer !== null) return;
    const wait = this.throttle.wait(performance.now());
    if (wait === 0) this.#flush();
    else this.#timer = setTimeout(() => this.#flush(), wait);
  }

  #flush() {
    this.#timer = null;
    const text = this.#pending;
    this.#pending = null;
    if (text === null || text === this.region.textContent) return;
    this.region.textContent = text;
    this.throttle.took(performance.now());
  }

  /** Drop what is pending and empty the region (a new session). */
  clear() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#pending = null;
    this.region.textContent = "";
    this.throttle.reset();
  }
}
