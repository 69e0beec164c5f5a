// The dancer's skeleton drawn on a canvas over a <video>, in step with the frame on screen: each frame's media
// time (requestVideoFrameCallback where the browser has it, else every animation frame's currentTime) picks the
// keypoint row floor(mediaTime * fps). The limb the server says is off is drawn red. `LiveSkeleton`: the user's
// own skeleton from the server's `pose` messages, over the local camera view (keypoints-only sessions).

import { containBox, poseOfKeypoints, skeletonShapes, tickAt } from "./skeleton.js";

/** A pose older than this is no longer where the user is (as the server's annotated track rules). */
const LIVE_POSE_MAX_AGE_MS = 1000;

/** The canvas sized to its box in device pixels and cleared: its 2D context, size and device pixel ratio. */
function clearedCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height, ratio };
}

/** Draw `shapes` (skeleton.skeletonShapes) on a 2D context; `scale` is the device pixel ratio. */
export function drawShapes(ctx, { lines, joints }, scale = 1) {
  ctx.lineCap = "round";
  ctx.lineWidth = 3 * scale;
  for (const { colour, from, to } of lines) {
    ctx.strokeStyle = colour;
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  }
  for (const { colour, at } of joints) {
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.arc(at[0], at[1], 3.5 * scale, 0, 2 * Math.PI);
    ctx.fill();
  }
}

/** The newest `pose` message drawn over `video` (the local camera) on `canvas`, until it is LIVE_POSE_MAX_AGE_MS
 * old; `clear()` removes it. */
export class LiveSkeleton {
  constructor(video, canvas) {
    Object.assign(this, { video, canvas });
    this.pose = null;
    this.off = null;
    this.at = 0;
    this.tick = null; // the tick drawn last, for tests
    this.frame = null; // the animation frame asked for
    this.fade = null;
    window.addEventListener("resize", () => this.draw());
  }

  /** A `pose` message (protocol.js). */
  show(message) {
    this.pose = poseOfKeypoints(message.keypoints);
    this.off = message.limb;
    this.tick = message.tick;
    this.at = performance.now();
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.draw());
  }

  clear() {
    this.pose = null;
    this.tick = null;
    this.draw();
  }

  draw() {
    this.frame = null;
    const { canvas, video } = this;
    const { ctx, width, height, ratio } = clearedCanvas(canvas);
    if (!this.pose || !video.videoWidth) return;
    const age = performance.now() - this.at;
    if (age > LIVE_POSE_MAX_AGE_MS) return;
    const box = containBox(video.videoWidth, video.videoHeight, width, height);
    drawShapes(ctx, skeletonShapes(this.pose, box, this.off), ratio);
    clearTimeout(this.fade);
    this.fade = setTimeout(() => this.draw(), LIVE_POSE_MAX_AGE_MS - age + 1); // gone if no newer pose comes
  }
}

export class SkeletonOverlay {
  constructor(video, canvas) {
    Object.assign(this, { video, canvas });
    this.keypoints = null; // { poses, fps }
    this.off = null;
    this.tick = null; // the tick drawn last, for tests and the report
    const redraw = () => this.draw(video.currentTime);
    for (const type of ["loadeddata", "seeked", "pause"]) video.addEventListener(type, redraw);
    window.addEventListener("resize", redraw);
    if (typeof video.requestVideoFrameCallback === "function") {
      const onFrame = (now, metadata) => {
        this.draw(metadata.mediaTime);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      const onAnimationFrame = () => {
        if (!video.paused) this.draw(video.currentTime);
        requestAnimationFrame(onAnimationFrame);
      };
      requestAnimationFrame(onAnimationFrame);
    }
  }

  /** The reference's keypoints (skeleton.parseKeypointsCsv with the reference's fps), or null to draw nothing. */
  setKeypoints(keypoints) {
    this.keypoints = keypoints;
    this.draw(this.video.currentTime);
  }

  /** The limb to draw red (a limb key), or null. */
  setOff(limb) {
    if (limb === this.off) return;
    this.off = limb;
    this.draw(this.video.currentTime);
  }

  draw(mediaTime) {
    const { canvas, video } = this;
    const { ctx, width, height, ratio } = clearedCanvas(canvas);
    this.tick = null;
    if (!this.keypoints || !video.videoWidth) return;
    const tick = tickAt(mediaTime, this.keypoints.fps);
    const pose = this.keypoints.poses.get(tick);
    if (!pose) return;
    this.tick = tick;
    const box = containBox(video.videoWidth, video.videoHeight, width, height);
    drawShapes(ctx, skeletonShapes(pose, box, this.off), ratio);
  }
}
