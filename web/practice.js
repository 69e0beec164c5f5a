// Practice mode: the dancer's playback rate (0.5x, 0.75x, 1x) and an A-B loop over a stretch of the dance. On
// reaching B the dancer video seeks back to A; the clock (clock.js) follows the media time, so the server hears
// the seek as a jump back and scores each pass against the same ticks, at any rate.

import { formatDuration } from "./format.js";

/** The shortest loop, in media seconds: shorter than a move or two is not worth practising. */
export const MIN_LOOP_S = 1;

export class Practice {
  constructor({ video, rate, setA, setB, clear, label }, { onLoop }) {
    Object.assign(this, { video, rate, setAButton: setA, setBButton: setB, clearButton: clear, label });
    this.onLoop = onLoop;
    this.a = null;
    this.b = null;
    rate.addEventListener("change", () => this.applyRate());
    video.addEventListener("loadedmetadata", () => this.applyRate());
    setA.addEventListener("click", () => this.setA(video.currentTime));
    setB.addEventListener("click", () => this.setB(video.currentTime));
    clear.addEventListener("click", () => this.clear());
    video.addEventListener("timeupdate", () => this.#check(video.currentTime));
    if (typeof video.requestVideoFrameCallback === "function") {
      const onFrame = (now, metadata) => {
        this.#check(metadata.mediaTime);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    }
    this.#show();
  }

  get loop() {
    return this.a !== null && this.b !== null ? { a: this.a, b: this.b } : null;
  }

  applyRate() {
    const rate = Number(this.rate.value) || 1;
    this.video.defaultPlaybackRate = rate; // load() resets playbackRate to this
    this.video.playbackRate = rate;
  }

  setA(t) {
    this.a = Math.max(0, t);
    if (this.b !== null && this.b < this.a + MIN_LOOP_S) this.b = null;
    this.#changed();
  }

  setB(t) {
    if (this.a === null) this.a = 0;
    if (t < this.a + MIN_LOOP_S) return this.#show(`B must be at least ${MIN_LOOP_S} s after A.`);
    this.b = t;
    this.#changed();
  }

  clear() {
    this.a = null;
    this.b = null;
    this.#changed();
  }

  /** Past B: back to A. */
  #check(t) {
    if (this.loop && t >= this.b && !this.video.seeking) this.video.currentTime = this.a;
  }

  #changed() {
    this.#show();
    this.onLoop(this.loop);
  }

  #show(problem = null) {
    const at = (t) => (t === null ? "–" : `${formatDuration(Math.floor(t))}.${Math.floor((t % 1) * 10)}`);
    this.label.textContent = problem ?? (this.a === null ? "No loop" : `Loop ${at(this.a)} → ${at(this.b)}`);
    this.label.dataset.a = this.a ?? "";
    this.label.dataset.b = this.b ?? "";
    this.clearButton.disabled = this.a === null;
  }
}
