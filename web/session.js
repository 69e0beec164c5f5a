// One dance-along session: the camera goes to the server over WebRTC, the annotated video and the scores come
// back on the same peer connection, and the dancer video's clock goes out on the `control` data channel. With
// `returnedVideo` false the camera is sent only, nothing comes back on the video track, and the `track` event
// carries the local camera (the page draws the `pose` messages over it).
//
// All of a session's state lives in its Session object; the page learns what happens from its events:
//   state  (detail: "connecting" | "dancing" | "stopping" | "finished")   status (detail: a sentence)
//   warnings (detail: the server's notes on the session, sentences)   track (detail: the returned MediaStream)
//   fps (detail: the returned video's frame rate)
//   score, stats, and any other server message protocol.js parses (detail: the message), under its type
//   closing (the connection is about to close: keep the last returned frame)
//   ended  (detail: { failed, reason }: reason is the server's `end` sentence or why the connection was lost)

import { postOffer } from "./api.js";
import { attachClock } from "./clock.js";
import { Cancelled, UserError } from "./errors.js";
import { profileToken } from "./progress.js";
import { CONTROL_LABEL, clockMessage, offerBody, parseControlMessage } from "./protocol.js";
import { ScoreTally } from "./score.js";

const ICE_GATHERING_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 20000;
const FINAL_STATS_WAIT_MS = 1000;
const DISCONNECTED_GRACE_MS = 4000;
const SILENCE_LIMIT_MS = 5000; // the server sends stats every second and a score per tick
const METER_INTERVAL_MS = 1000;

export class Session extends EventTarget {
  /** `reference` as listed by the server; `dancer` the <video> playing it (the clock follows it). */
  constructor({ reference, mirror, dancer, mosaic = true, returnedVideo = true }) {
    super();
    this.reference = reference;
    this.mirror = Boolean(mirror);
    this.mosaic = Boolean(mosaic);
    this.returnedVideo = Boolean(returnedVideo);
    this.dancer = dancer;
    this.state = "idle";
    this.id = null;
    this.token = null;
    this.pose = null;
    this.warnings = [];
    this.tally = new ScoreTally();
    this.stats = null;
    this.endTime = 0;
    this.failed = false;
    this.endReason = null;
    this.pc = null;
    this.channel = null;
    this.camera = null;
    this.clock = null;
    this.meter = null;
    this.lastInbound = null; // the returned video's previous inbound-rtp report, for its frame rate
    this.lostTimer = null;
    this.lastHeardAt = 0;
    this.onFinalStats = null;
    this.listening = new AbortController(); // every listener on the (shared) dancer video goes with it
  }

  get title() {
    return this.reference.title || this.reference.id;
  }

  /** True from Start until the session is over. */
  get active() {
    return this.state === "connecting" || this.state === "dancing";
  }

  /** Open the camera, connect, play the dancer from the start and drive the clock. Rejects with the reason
   * (UserError: a sentence for the user) when it cannot; stop() during start-up resolves it quietly. */
  async start() {
    this.#setState("connecting");
    try {
      await this.#connect();
      await this.#playDancerFromStart();
      this.clock = attachClock(this.dancer, (message) => this.#send(message));
      this.#setState("dancing");
      this.#status(`Dancing to “${this.title}”. Press Stop when you are done.`);
    } catch (error) {
      if (error instanceof Cancelled || this.state !== "connecting") {
        this.#close(); // Stop (or a lost connection) came first; a camera opened since must close too
        return;
      }
      await this.stop({ failed: true });
      throw error;
    }
  }

  /**
   * End the session (idempotent): stop the dancer and the clock, tell the server the final media time, let the
   * last score and stats messages arrive (unless it failed or the server ended it), close everything.
   */
  async stop({ failed = false, reason = null, byServer = false } = {}) {
    if (this.state === "stopping" || this.state === "finished") return;
    this.#setState("stopping");
    this.clock?.stop();
    this.listening.abort();
    this.dancer.pause();
    this.endTime = this.dancer.currentTime;
    this.#send(clockMessage(this.endTime, false));
    if (!failed && !byServer) await this.#settle();
    this.emit("closing");
    this.#close();
    this.failed = failed;
    this.endReason = reason;
    this.#setState("finished");
    this.emit("ended", { failed, reason });
  }

  emit(type, detail = null) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  #status(text) {
    this.emit("status", text);
  }

  #checkActive() {
    if (this.state !== "connecting") throw new Cancelled();
  }

  async #connect() {
    this.#status("Opening the camera…");
    this.camera = await openCamera();
    this.#checkActive();
    this.#status("Connecting to the server…");
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.channel = pc.createDataChannel(CONTROL_LABEL); // before the offer, so it is negotiated with it
    this.channel.onmessage = (event) => this.#onMessage(event.data);
    this.channel.onclose = () => this.#lost("The server closed the session.");
    pc.ontrack = (event) => this.emit("track", event.streams[0] ?? new MediaStream([event.track]));
    pc.onconnectionstatechange = () => this.#onConnectionState();
    for (const track of this.camera.getVideoTracks()) {
      if (this.returnedVideo) pc.addTrack(track, this.camera);
      else pc.addTransceiver(track, { direction: "sendonly", streams: [this.camera] });
    }
    if (!this.returnedVideo) this.emit("track", this.camera);

    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const { sdp } = pc.localDescription;
    const { mirror, mosaic, returnedVideo } = this;
    const offer = { sdp, reference: this.reference.id, mirror, mosaic, returnedVideo, profile: profileToken() };
    const answer = await postOffer(offerBody(offer));
    this.#checkActive();
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    this.id = answer.session;
    this.token = answer.token;
    this.pose = answer.pose;
    this.warnings = answer.warnings.map((text) => `Note: ${text}.`);
    this.emit("warnings", this.warnings);
    await waitForOpen(this.channel);
    this.#checkActive();
    this.meter = setInterval(() => this.#measure(), METER_INTERVAL_MS);
  }

  async #playDancerFromStart() {
    const video = this.dancer;
    await videoReady(video);
    this.#checkActive();
    if (video.currentTime !== 0) {
      const seeked = once(video, "seeked");
      video.currentTime = 0;
      await seeked;
    }
    try {
      await video.play();
    } catch (error) {
      if (error.name !== "NotAllowedError") throw new UserError(`The dancer video won't play: ${error.message}`);
      video.muted = true; // the browser allows muted playback without a click
      await video.play();
      this.#status("The browser blocked the sound; the dancer video plays muted.");
    }
    video.addEventListener("ended", () => this.stop(), { once: true, signal: this.listening.signal });
  }

  #send(message) {
    if (this.channel?.readyState === "open") this.channel.send(JSON.stringify(message));
  }

  #onMessage(data) {
    this.lastHeardAt = performance.now();
    const message = parseControlMessage(data);
    if (!message) return;
    if (message.type === "end") {
      this.stop({ reason: message.reason, byServer: true });
      return;
    }
    if (message.type === "score") this.tally.add(message);
    if (message.type === "stats") this.stats = message;
    this.emit(message.type, message);
    if (message.type === "stats") this.onFinalStats?.();
  }

  /** "failed" ends the session; "disconnected" does if the connection is not back within a few seconds
   * (a server that died never says goodbye, and ICE alone would take much longer to give up). */
  #onConnectionState() {
    const state = this.pc.connectionState;
    clearTimeout(this.lostTimer);
    if (state === "failed") {
      this.#lost("The connection to the server failed.");
    } else if (state === "disconnected") {
      this.#status("The connection to the server is interrupted…");
      this.lostTimer = setTimeout(
        () => this.#lost("The connection to the server was lost: is the server still running?"),
        DISCONNECTED_GRACE_MS,
      );
    } else if (state === "connected" && this.state === "dancing") {
      this.#status(`Dancing to “${this.title}”. Press Stop when you are done.`);
    }
  }

  #lost(reason) {
    if (!this.active) return;
    this.stop({ failed: true, reason });
  }

  /** Every second: end a session whose server went quiet, and measure the returned video's frame rate. */
  async #measure() {
    if (this.lastHeardAt && performance.now() - this.lastHeardAt > SILENCE_LIMIT_MS) {
      this.#lost("The server stopped answering: is it still running?");
      return;
    }
    let inbound = null;
    try {
      (await this.pc.getStats()).forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "video") inbound = report;
      });
    } catch {
      return; // the connection is closing
    }
    if (!inbound) return;
    const last = this.lastInbound;
    if (last && inbound.timestamp > last.timestamp) {
      const fps = ((inbound.framesDecoded - last.framesDecoded) * 1000) / (inbound.timestamp - last.timestamp);
      this.emit("fps", fps);
    }
    this.lastInbound = inbound;
  }

  /** Let the final clock message go out and the last score and stats messages come in. */
  async #settle() {
    const channel = this.channel;
    const deadline = performance.now() + FINAL_STATS_WAIT_MS;
    while (channel?.readyState === "open" && channel.bufferedAmount > 0 && performance.now() < deadline) {
      await sleep(20);
    }
    if (channel?.readyState !== "open") return;
    await new Promise((resolve) => {
      this.onFinalStats = resolve;
      setTimeout(resolve, Math.max(0, deadline - performance.now()));
    });
    this.onFinalStats = null;
  }

  #close() {
    clearInterval(this.meter);
    clearTimeout(this.lostTimer);
    this.clock?.stop();
    this.listening.abort();
    if (this.channel) {
      this.channel.onclose = null;
      this.channel.onmessage = null;
    }
    this.pc?.close();
    this.camera?.getTracks().forEach((track) => track.stop());
  }
}

async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new UserError("This browser can't use a camera on this page (it needs https or localhost).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (error) {
    throw new UserError(cameraMessage(error));
  }
}

function cameraMessage(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Camera access was denied. Allow the camera for this page (the icon in the address bar) " +
        "and press Start again."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect a camera and press Start again.";
    case "NotReadableError":
    case "AbortError":
      return "The camera could not be started: another application may be using it.";
    default:
      return `The camera could not be opened: ${error.message || error.name}.`;
  }
}

/** Non-trickle signalling, as in aiortc's examples: the offer goes out with all ICE candidates in it. */
function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHERING_TIMEOUT_MS); // send what we have rather than hang
  });
}

function waitForOpen(channel) {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new UserError("The connection to the server could not be set up (timed out).")),
      CONNECT_TIMEOUT_MS,
    );
    channel.addEventListener("open", () => {
      clearTimeout(timer);
      resolve();
    });
    channel.addEventListener("close", () => {
      clearTimeout(timer);
      reject(new UserError("The connection to the server failed."));
    });
  });
}

function videoReady(video) {
  if (video.readyState >= HTMLMediaElement.HAVE_METADATA) return Promise.resolve();
  return new Promise((resolve, reject) => {
    video.addEventListener("loadedmetadata", resolve, { once: true });
    video.addEventListener("error", () => reject(new UserError("The dancer video could not be loaded.")), {
      once: true,
    });
  });
}

const once = (target, type) => new Promise((resolve) => target.addEventListener(type, resolve, { once: true }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
