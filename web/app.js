// dancesync page: pick a reference dance, dance along over WebRTC, watch the live score, download the CSVs.
// Plain ES module, no framework and no build step.

const CLOCK_INTERVAL_MS = 50; // clock messages 20 times a second (the server needs at least 10)
const MAX_EXTRAPOLATION_S = 0.5; // how far past the last shown dancer frame the clock may run on its own
const JOB_POLL_MS = 500;
const ICE_GATHERING_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 20000;
const FINAL_STATS_WAIT_MS = 1000;
const DISCONNECTED_GRACE_MS = 4000;
const SILENCE_LIMIT_MS = 5000; // the server sends stats every second and a score per tick
const HISTORY_LENGTH = 120;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  error: $("error"),
  errorText: $("error-text"),
  reference: $("reference"),
  mirror: $("mirror"),
  start: $("start"),
  stop: $("stop"),
  uploadPanel: $("upload-panel"),
  uploadForm: $("upload-form"),
  uploadButton: $("upload-button"),
  uploadPose: $("upload-pose"),
  notice: $("notice"),
  uploadProgress: $("upload-progress"),
  uploadBar: $("upload-bar"),
  uploadLabel: $("upload-label"),
  dancer: $("dancer"),
  dancerPlaceholder: $("dancer-placeholder"),
  you: $("you"),
  youPlaceholder: $("you-placeholder"),
  badge: $("score-badge"),
  score: $("score"),
  average: $("average"),
  worst: $("worst"),
  fps: $("fps"),
  ticks: $("ticks"),
  history: $("history"),
  summary: $("summary"),
  sumAverage: $("sum-average"),
  sumProcessed: $("sum-processed"),
  sumSkipped: $("sum-skipped"),
  sumWorst: $("sum-worst"),
  sumPose: $("sum-pose"),
  downloadKeypoints: $("download-keypoints"),
  downloadScores: $("download-scores"),
};

const app = { references: [], session: null, uploading: false };

/** An error whose message is meant for the user as it is. */
class UserError extends Error {}

/** Thrown inside a session's start-up once the user has pressed Stop; never shown. */
class Cancelled extends Error {}

// ---------------------------------------------------------------------------------------------------------
// Talking to the server

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new UserError("Can't reach the dancesync server. Is it running? Reload the page once it is.");
  }
  if (!response.ok) throw new UserError(await responseError(response));
  return response;
}

async function getJSON(path) {
  return (await api(path)).json();
}

/** The server's own words for a failed request: a JSON {"error"|"message"|"detail"} or its text. */
async function responseError(response) {
  let text = "";
  try {
    text = (await response.text()).trim();
  } catch {
    // the body is gone too; the status is all there is
  }
  return describeErrorBody(text, response.status, response.statusText);
}

function describeErrorBody(text, status, statusText) {
  let detail = text;
  try {
    const body = JSON.parse(text);
    detail = body.error ?? body.message ?? body.detail ?? text;
  } catch {
    // plain text
  }
  detail = String(detail).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 300);
  return detail ? `${detail} (HTTP ${status})` : `The server answered HTTP ${status} ${statusText}`.trim();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------
// Messages to the user

function showStatus(text) {
  ui.status.textContent = text;
}

function showError(error) {
  const text = error instanceof UserError ? error.message : `Something went wrong: ${error.message ?? error}`;
  ui.errorText.textContent = text;
  ui.error.hidden = false;
  if (!(error instanceof UserError)) console.error(error);
}

/** Things worth knowing that are not failures (the server's warnings about a session, failed ticks). */
function showNotice(lines) {
  ui.notice.textContent = lines.join(" ");
  ui.notice.hidden = lines.length === 0;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === "connecting" || state === "dancing";
  ui.start.disabled = busy || !selectedReference();
  ui.start.textContent = state === "finished" ? "Dance again" : "Start dancing";
  ui.stop.disabled = !busy;
  ui.reference.disabled = busy || app.references.length === 0;
  ui.mirror.disabled = busy;
  ui.uploadButton.disabled = busy || app.uploading;
}

// ---------------------------------------------------------------------------------------------------------
// Reference library

async function loadReferences(selectId) {
  app.references = await getJSON("/api/references");
  renderReferenceOptions(selectId ?? ui.reference.value);
  showStatus(app.references.length ? "Pick a dance and press Start." : "No references yet: add a video.");
}

/** References still being built (e.g. the sample, seeded at first start): say so, list them when done. */
async function watchPendingJobs() {
  let waited = false;
  for (;;) {
    let pending;
    try {
      pending = await getJSON("/api/jobs");
    } catch {
      return; // an older server without the list, or it is gone: the reference list says enough
    }
    if (pending.length === 0) break;
    waited = true;
    const job = pending[0];
    if (app.references.length === 0 && !document.body.dataset.state.match(/connecting|dancing/)) {
      showStatus(`Preparing “${job.title}”: ${Math.round((job.progress || 0) * 100)}%…`);
    }
    await sleep(1000);
  }
  if (waited) await loadReferences();
}

function renderReferenceOptions(selectId) {
  const options = app.references.map((ref) => new Option(referenceLabel(ref), ref.id));
  if (options.length === 0) options.push(new Option("No references yet", ""));
  ui.reference.replaceChildren(...options);
  if (app.references.some((ref) => ref.id === selectId)) ui.reference.value = selectId;
  onReferenceChange();
}

function referenceLabel(ref) {
  const pose = ref.pose ? ` · ${ref.pose}` : "";
  return `${ref.title || ref.id} · ${formatDuration(ref.duration_s)} · ${ref.fps} ticks/s${pose}`;
}

/** The pose models the server offers, for the upload form; the server's default comes first. */
async function loadBackends() {
  const { backends } = await getJSON("/api/backends");
  ui.uploadPose.replaceChildren(...backends.map((name, i) => new Option(i === 0 ? `${name} (default)` : name, name)));
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function selectedReference() {
  return app.references.find((ref) => ref.id === ui.reference.value) ?? null;
}

function onReferenceChange() {
  const ref = selectedReference();
  const state = document.body.dataset.state;
  setState(state);
  if (!ref || state === "connecting" || state === "dancing") return;
  const src = `/api/references/${encodeURIComponent(ref.id)}/video`;
  if (ui.dancer.getAttribute("src") !== src) {
    ui.dancer.src = src;
    ui.dancer.load();
  }
  ui.dancerPlaceholder.hidden = true;
}

function onDancerError() {
  if (!ui.dancer.getAttribute("src")) return;
  const code = ui.dancer.error?.code;
  const why = code === 4 ? "this browser can't decode it" : "it could not be loaded";
  showError(new UserError(`The dancer video can't be played: ${why}.`));
}

// ---------------------------------------------------------------------------------------------------------
// Upload: send the file with progress, then follow the extraction job

async function onUpload(event) {
  event.preventDefault();
  const form = new FormData(ui.uploadForm);
  if (!form.get("title")) form.delete("title");
  clearError();
  app.uploading = true;
  setState(document.body.dataset.state);
  try {
    setUploadProgress(0, "Uploading…");
    const { id, job } = await uploadReference(form, (share) =>
      setUploadProgress(share, `Uploading… ${Math.round(share * 100)}%`),
    );
    await followJob(job);
    await loadReferences(id);
    setUploadProgress(1, "Added. It is selected above.");
    ui.uploadForm.reset();
  } catch (error) {
    ui.uploadProgress.hidden = true;
    showError(error instanceof UserError ? new UserError(`Upload failed: ${error.message}`) : error);
  } finally {
    app.uploading = false;
    setState(document.body.dataset.state);
  }
}

function setUploadProgress(share, label) {
  ui.uploadProgress.hidden = false;
  ui.uploadBar.value = share;
  ui.uploadLabel.textContent = label;
}

/** POST the form with XMLHttpRequest, the one browser API that reports upload progress. */
function uploadReference(form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/references");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new UserError("Can't reach the dancesync server. Is it running?"));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText));
      } else {
        reject(new UserError(`the server rejected it: ${describeErrorBody(xhr.responseText, xhr.status, xhr.statusText)}`));
      }
    };
    xhr.send(form);
  });
}

async function followJob(job) {
  for (;;) {
    const { state, progress, error } = await getJSON(`/api/jobs/${encodeURIComponent(job)}`);
    if (state === "done") return;
    if (state === "failed") throw new UserError(`extracting the keypoints failed: ${error || "no reason given"}`);
    const share = Number(progress) || 0;
    const label = state === "queued" ? "Waiting for the extractor…" : `Extracting keypoints… ${Math.round(share * 100)}%`;
    setUploadProgress(share, label);
    await sleep(JOB_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------------------
// A session: camera → WebRTC → server, annotated video and scores back

function newSession(ref) {
  return {
    ref,
    mirror: ui.mirror.checked,
    pc: null,
    channel: null,
    camera: null,
    clock: null,
    fpsTimer: null,
    lostTimer: null,
    lastMessageAt: 0,
    id: null,
    token: null,
    pose: null,
    warnings: [],
    scores: [],
    sum: 0,
    worstCounts: new Map(),
    stats: null,
    onStats: null,
    endTime: 0,
    stopping: false,
    finished: false,
  };
}

async function startSession() {
  const ref = selectedReference();
  if (!ref) return;
  const session = newSession(ref);
  app.session = session;
  clearError();
  resetScoreboard();
  setState("connecting");
  try {
    await connect(session);
    await playDancerFromStart(session);
    session.clock = startClock(ui.dancer, (message) => send(session, message));
    setState("dancing");
    showStatus(`Dancing to “${ref.title || ref.id}”. Press Stop when you are done.`);
  } catch (error) {
    if (error instanceof Cancelled || session.stopping) {
      closeConnection(session); // Stop (or a lost connection) came first; a camera opened since must close too
      return;
    }
    showError(error);
    await finishSession(session, { failed: true });
  }
}

async function connect(session) {
  showStatus("Opening the camera…");
  session.camera = await openCamera();
  checkActive(session);
  showStatus("Connecting to the server…");
  const pc = new RTCPeerConnection();
  session.pc = pc;
  session.channel = pc.createDataChannel("control"); // before the offer, so it is negotiated with it
  session.channel.onmessage = (event) => onControlMessage(session, event);
  session.channel.onclose = () => onConnectionLost(session, "The server closed the session.");
  pc.ontrack = (event) => showReturnedVideo(event);
  pc.onconnectionstatechange = () => onConnectionState(session);
  for (const track of session.camera.getVideoTracks()) pc.addTrack(track, session.camera);
  const answer = await negotiate(pc, { reference: session.ref.id, mirror: session.mirror });
  checkActive(session);
  session.id = answer.session;
  session.token = answer.token;
  session.pose = answer.pose ?? null;
  session.warnings = (answer.warnings ?? []).map((text) => `Note: ${text}.`);
  showNotice(session.warnings);
  await waitForChannelOpen(session.channel);
  checkActive(session);
  session.fpsTimer = startFpsMeter(pc, () => checkServerAlive(session));
}

/** A server that died (or hangs) goes quiet long before ICE notices: end the session after a silence. */
function checkServerAlive(session) {
  if (session.lastMessageAt && performance.now() - session.lastMessageAt > SILENCE_LIMIT_MS) {
    onConnectionLost(session, "The server stopped answering: is it still running?");
  }
}

function checkActive(session) {
  if (session.stopping) throw new Cancelled();
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
      return "Camera access was denied. Allow the camera for this page (the icon in the address bar) and press Start again.";
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
async function negotiate(pc, extra) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  const { sdp, type } = pc.localDescription;
  let response;
  try {
    response = await api("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp, type, ...extra }),
    });
  } catch (error) {
    throw error instanceof UserError ? new UserError(`The server refused the session: ${error.message}`) : error;
  }
  const answer = await response.json();
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  return answer;
}

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

function waitForChannelOpen(channel) {
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

function showReturnedVideo(event) {
  ui.you.srcObject = event.streams[0] ?? new MediaStream([event.track]);
  ui.you.removeAttribute("poster");
  ui.youPlaceholder.hidden = true;
  ui.you.play().catch(() => {}); // muted, so autoplay is allowed
}

function send(session, message) {
  if (session.channel?.readyState === "open") session.channel.send(JSON.stringify(message));
}

/** "failed" ends the session; "disconnected" does if the connection is not back within a few seconds
 * (a server that died never says goodbye, and ICE alone would take much longer to give up). */
function onConnectionState(session) {
  const state = session.pc.connectionState;
  clearTimeout(session.lostTimer);
  if (state === "failed") {
    onConnectionLost(session, "The connection to the server failed.");
  } else if (state === "disconnected") {
    showStatus("The connection to the server is interrupted…");
    session.lostTimer = setTimeout(
      () => onConnectionLost(session, "The connection to the server was lost: is the server still running?"),
      DISCONNECTED_GRACE_MS,
    );
  } else if (state === "connected" && document.body.dataset.state === "dancing") {
    showStatus(`Dancing to “${session.ref.title || session.ref.id}”. Press Stop when you are done.`);
  }
}

function onConnectionLost(session, text) {
  if (session.stopping || session.finished) return;
  showError(new UserError(`${text} The session has ended; the scores so far are below.`));
  finishSession(session, { failed: true });
}

// ---------------------------------------------------------------------------------------------------------
// The dancer video and its clock

async function playDancerFromStart(session) {
  const video = ui.dancer;
  await videoReady(video);
  checkActive(session);
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
    showStatus("The browser blocked the sound; the dancer video plays muted.");
  }
  video.addEventListener("ended", () => stopSession(), { once: true });
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

function once(target, type) {
  return new Promise((resolve) => target.addEventListener(type, resolve, { once: true }));
}

function isPlaying(video) {
  return !video.paused && !video.ended && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA;
}

/**
 * Send {"type": "clock", "t", "playing"} every CLOCK_INTERVAL_MS and on every play, pause, seek and stall.
 * With requestVideoFrameCallback, t runs on from the media time of the frame on screen; else currentTime.
 */
function startClock(video, sendMessage) {
  let shown = null; // { mediaTime, at } of the last dancer frame on screen
  let handle = null;
  const canWatchFrames = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  const onFrame = (now, metadata) => {
    shown = { mediaTime: metadata.mediaTime, at: metadata.expectedDisplayTime ?? now };
    handle = video.requestVideoFrameCallback(onFrame);
  };
  if (canWatchFrames) handle = video.requestVideoFrameCallback(onFrame);

  let floor = 0; // while playing, t never goes back (frame timing jitter) except on a seek
  const estimate = () => {
    if (!shown || !isPlaying(video)) return video.currentTime;
    const ahead = ((performance.now() - shown.at) / 1000) * video.playbackRate;
    const t = shown.mediaTime + Math.min(Math.max(ahead, 0), MAX_EXTRAPOLATION_S);
    return Math.abs(t - video.currentTime) > MAX_EXTRAPOLATION_S ? video.currentTime : t;
  };
  const mediaTime = () => {
    const t = estimate();
    floor = isPlaying(video) ? Math.max(t, floor) : t;
    return floor;
  };
  const tick = () => sendMessage({ type: "clock", t: round3(mediaTime()), playing: isPlaying(video) });
  const forget = () => {
    shown = null;
    floor = 0;
  };

  const events = ["play", "playing", "pause", "seeked", "waiting", "ratechange", "ended"];
  events.forEach((type) => video.addEventListener(type, tick));
  video.addEventListener("seeking", forget);
  const timer = setInterval(tick, CLOCK_INTERVAL_MS);
  tick();
  return {
    now: mediaTime,
    stop() {
      clearInterval(timer);
      events.forEach((type) => video.removeEventListener(type, tick));
      video.removeEventListener("seeking", forget);
      if (handle !== null && canWatchFrames) video.cancelVideoFrameCallback(handle);
    },
  };
}

const round3 = (x) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------------------------------------
// Live score and statistics

function onControlMessage(session, event) {
  session.lastMessageAt = performance.now();
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type === "score") onScore(session, message);
  else if (message.type === "stats") onStats(session, message);
  else if (message.type === "error") showError(new UserError(`The server says: ${message.message ?? message.error}`));
}

function onScore(session, message) {
  if (typeof message.score !== "number") return;
  session.scores.push(message.score);
  session.sum += message.score;
  if (message.worst) session.worstCounts.set(message.worst, (session.worstCounts.get(message.worst) ?? 0) + 1);
  renderScore(message.score, session.sum / session.scores.length, message.worst);
  renderTicks(session);
  drawHistory(session.scores.slice(-HISTORY_LENGTH));
}

function onStats(session, message) {
  session.stats = message;
  renderTicks(session);
  const errors = message.errors ?? 0;
  const plural = errors === 1 ? "" : "s";
  const failed = errors ? [`The server could not analyse ${errors} tick${plural}; they count as skipped.`] : [];
  showNotice([...session.warnings, ...failed]);
  session.onStats?.();
}

/** Processed and skipped tick counts, from the server's stats when it sent any, else from the scores seen. */
function tickCounts(session) {
  const stats = session.stats ?? {};
  const processed = stats.processed ?? stats.ticks_processed ?? session.scores.length;
  const skipped = stats.skipped ?? stats.ticks_skipped ?? null;
  return { processed: Math.max(processed, session.scores.length), skipped };
}

function renderScore(score, average, worst) {
  setScoreText(ui.score, score);
  setScoreText(ui.badge, score);
  ui.badge.hidden = false;
  setScoreText(ui.average, average);
  ui.worst.textContent = worst ? partName(worst) : "–";
}

function setScoreText(element, value) {
  element.textContent = Number.isFinite(value) ? String(Math.round(value)) : "–";
  element.classList.remove("good", "fair", "poor");
  if (Number.isFinite(value)) element.classList.add(scoreClass(value));
}

function scoreClass(value) {
  if (value >= 70) return "good";
  return value >= 40 ? "fair" : "poor";
}

function renderTicks(session) {
  const { processed, skipped } = tickCounts(session);
  ui.ticks.textContent = skipped ? `${processed} (${skipped} skipped)` : String(processed);
}

/** "l_wrist" → "left wrist". */
function partName(key) {
  const side = { l: "left", r: "right" }[key.slice(0, 1)];
  const words = key.split("_");
  if (side && words[0].length === 1) words[0] = side;
  return words.join(" ");
}

function resetScoreboard() {
  for (const element of [ui.score, ui.average, ui.badge]) setScoreText(element, NaN);
  ui.worst.textContent = "–";
  ui.fps.textContent = "–";
  ui.ticks.textContent = "–";
  ui.badge.hidden = true;
  ui.summary.hidden = true;
  showNotice([]);
  drawHistory([]);
}

function drawHistory(scores) {
  const canvas = ui.history;
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth * ratio;
  const height = canvas.clientHeight * ratio;
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "rgba(255, 255, 255, 0.12)";
  ctx.lineWidth = ratio;
  for (const level of [40, 70]) {
    const y = height - (level / 100) * height;
    ctx.beginPath();
    ctx.moveTo(0, y);
    ctx.lineTo(width, y);
    ctx.stroke();
  }
  if (scores.length < 2) return;
  const step = width / (HISTORY_LENGTH - 1);
  ctx.strokeStyle = "#ff5c8a";
  ctx.lineWidth = 2 * ratio;
  ctx.beginPath();
  scores.forEach((score, i) => {
    const x = i * step;
    const y = height - (Math.min(Math.max(score, 0), 100) / 100) * (height - 2 * ratio) - ratio;
    i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
  });
  ctx.stroke();
}

/** Every second: `everySecond()`, then the returned (annotated) video's frame rate from its decoded-frame count. */
function startFpsMeter(pc, everySecond) {
  let last = null;
  const measure = async () => {
    everySecond();
    let inbound = null;
    try {
      (await pc.getStats()).forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "video") inbound = report;
      });
    } catch {
      return; // the connection is closing
    }
    if (!inbound) return;
    if (last && inbound.timestamp > last.timestamp) {
      const fps = ((inbound.framesDecoded - last.framesDecoded) * 1000) / (inbound.timestamp - last.timestamp);
      ui.fps.textContent = `${fps.toFixed(1)} fps`;
    }
    last = inbound;
  };
  return setInterval(measure, 1000);
}

// ---------------------------------------------------------------------------------------------------------
// Ending a session, the summary and the downloads

function stopSession() {
  const session = app.session;
  if (session && !session.finished) finishSession(session);
}

async function finishSession(session, { failed = false } = {}) {
  if (session.stopping) return;
  session.stopping = true;
  session.clock?.stop();
  ui.dancer.pause();
  session.endTime = ui.dancer.currentTime;
  send(session, { type: "clock", t: round3(session.endTime), playing: false });
  if (!failed) await settle(session);
  freezeReturnedVideo();
  closeConnection(session);
  session.finished = true;
  ui.badge.hidden = true;
  if (app.session !== session) return;
  if (session.id) {
    setState("finished");
    renderSummary(session);
    showStatus(failed ? "The session ended early." : "Session over. Download your CSVs or dance again.");
  } else {
    setState("idle");
    showStatus("Pick a dance and press Start.");
  }
}

/** Keep the last annotated frame on screen once the track ends. */
function freezeReturnedVideo() {
  const video = ui.you;
  if (!video.videoWidth) return;
  const canvas = Object.assign(document.createElement("canvas"), {
    width: video.videoWidth,
    height: video.videoHeight,
  });
  canvas.getContext("2d").drawImage(video, 0, 0);
  video.poster = canvas.toDataURL("image/jpeg", 0.85);
  video.srcObject = null;
}

/** Let the final clock message go out and the last score and stats messages come in. */
async function settle(session) {
  const channel = session.channel;
  const deadline = performance.now() + FINAL_STATS_WAIT_MS;
  while (channel?.readyState === "open" && channel.bufferedAmount > 0 && performance.now() < deadline) {
    await sleep(20);
  }
  if (channel?.readyState !== "open") return;
  await new Promise((resolve) => {
    session.onStats = resolve;
    setTimeout(resolve, Math.max(0, deadline - performance.now()));
  });
  session.onStats = null;
}

function closeConnection(session) {
  clearInterval(session.fpsTimer);
  clearTimeout(session.lostTimer);
  if (session.channel) session.channel.onclose = null;
  session.pc?.close();
  session.camera?.getTracks().forEach((track) => track.stop());
}

function renderSummary(session) {
  if (!session.id) return;
  const { processed, skipped } = tickCounts(session);
  const elapsed = Math.floor(session.endTime * session.ref.fps) + 1;
  const missed = skipped ?? Math.max(0, elapsed - processed);
  setScoreText(ui.sumAverage, session.scores.length ? session.sum / session.scores.length : NaN);
  ui.sumProcessed.textContent = String(processed);
  ui.sumSkipped.textContent = String(missed);
  ui.sumWorst.textContent = mostFrequent(session.worstCounts) ?? "–";
  ui.sumPose.textContent = session.pose ?? "–";
  ui.summary.hidden = false;
}

function mostFrequent(counts) {
  let best = null;
  for (const [key, count] of counts) if (!best || count > best[1]) best = [key, count];
  return best && partName(best[0]);
}

async function downloadCsv(name) {
  const session = app.session;
  if (!session?.id) return;
  clearError();
  try {
    const path = `/api/sessions/${encodeURIComponent(session.id)}/${name}`;
    const response = await api(path, { headers: { Authorization: `Bearer ${session.token}` } });
    saveBlob(await response.blob(), `dancesync-${slug(session.ref.title || session.ref.id)}-${name}`);
  } catch (error) {
    showError(error instanceof UserError ? new UserError(`Download failed: ${error.message}`) : error);
  }
}

function slug(text) {
  return (
    String(text)
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "") || "session"
  );
}

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---------------------------------------------------------------------------------------------------------
// Wiring

function init() {
  ui.reference.addEventListener("change", onReferenceChange);
  ui.dancer.addEventListener("error", onDancerError);
  ui.start.addEventListener("click", startSession);
  ui.stop.addEventListener("click", stopSession);
  ui.uploadForm.addEventListener("submit", onUpload);
  ui.downloadKeypoints.addEventListener("click", () => downloadCsv("keypoints.csv"));
  ui.downloadScores.addEventListener("click", () => downloadCsv("scores.csv"));
  $("error-close").addEventListener("click", clearError);
  $("summary-close").addEventListener("click", () => (ui.summary.hidden = true));
  resetScoreboard();
  setState("idle");
  loadBackends().catch(showError);
  loadReferences()
    .then(watchPendingJobs)
    .catch((error) => {
      showStatus("Offline.");
      showError(error);
    });
}

init();
