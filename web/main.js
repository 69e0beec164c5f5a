// dancesync page: pick a reference dance, dance along over WebRTC, watch the live score, download the CSVs.
// Plain ES modules, no framework and no build step. This module only wires the parts together: the page's state
// is the current Session; body[data-state] mirrors it for the style sheet (and tests) and is never read back.
//
//   protocol.js  the wire messages (pure)          api.js        the /api/* requests
//   clock.js     dancer media time → clock messages (pure core + the <video> shell)
//   session.js   Session: camera, RTCPeerConnection, `control` channel, returned video, its scores
//   score.js     the score tally and its words (pure)  scoreboard.js  live numbers, sparkline, spoken summary
//   announcer.js the throttled live region          library.js    dance picker, builds, upload panel
//   summary.js   the end-of-session <dialog>        feedback.js   status line, errors, notices
//   skeleton.js  keypoint CSVs, limbs, colours (pure)  overlay.js  the dancer's skeleton over the dancer video
//   coach.js     verdicts, latency, practice passes (pure)  practice.js  playback rate and the A-B loop
//   report.js    the end-of-session report (uPlot charts, the worst moves replayed)
//
// A new server message gets a parser in protocol.js and a listener on the Session's event of that name.

import { referenceKeypoints, referenceMoves, referenceVideoUrl, sessionFile } from "./api.js";
import { latencyText, limbOfScore, MoveLog, PassTracker, trendText, verdictText } from "./coach.js";
import { UserError } from "./errors.js";
import { Feedback } from "./feedback.js";
import { exportFilename, failedTicksNotice } from "./format.js";
import { Library } from "./library.js";
import { LiveSkeleton, SkeletonOverlay } from "./overlay.js";
import { Practice } from "./practice.js";
import { startProgress } from "./progress.js";
import { Report } from "./report.js";
import { sessionSummary } from "./score.js";
import { Scoreboard } from "./scoreboard.js";
import { Session } from "./session.js";
import { parseKeypointsCsv } from "./skeleton.js";
import { SummaryDialog } from "./summary.js";
import { TakeScorer } from "./takes.js";

const $ = (id) => document.getElementById(id);

const controls = {
  start: $("start"),
  stop: $("stop"),
  mirror: $("mirror"),
  mosaic: $("mosaic"),
  keypointsOnly: $("keypoints-only"),
};
const you = { video: $("you"), placeholder: $("you-placeholder") };

const feedback = new Feedback({
  status: $("status"),
  error: $("error"),
  errorText: $("error-text"),
  errorClose: $("error-close"),
  notice: $("notice"),
});
const scoreboard = new Scoreboard({
  score: $("score"),
  average: $("average"),
  worst: $("worst"),
  fps: $("fps"),
  ticks: $("ticks"),
  badge: $("score-badge"),
  history: $("history"),
  live: $("live-summary"),
  lastMove: $("last-move"),
  latency: $("latency"),
  passes: $("passes"),
  verdict: $("verdict"),
});
const overlay = new SkeletonOverlay($("dancer"), $("dancer-overlay"));
const youSkeleton = new LiveSkeleton($("you"), $("you-overlay")); // keypoints-only sessions
const passes = new PassTracker();
const practice = new Practice(
  {
    video: $("dancer"),
    rate: $("rate"),
    setA: $("loop-a"),
    setB: $("loop-b"),
    clear: $("loop-clear"),
    label: $("loop-label"),
  },
  {
    onLoop: (loop) => {
      // A loop set while dancing: the stretch just danced from A to B is its first pass.
      passes.setLoop(loop);
      if (session?.active) {
        session.tally.scores.forEach((score) => passes.addScore(score));
        moveLog.list.forEach((move) => passes.addMove(move));
      }
      scoreboard.showPasses(passes.loop ? trendText(passes.summary()) : "");
    },
  },
);
const report = new Report({
  section: $("report"),
  tiers: $("report-tiers"),
  latency: $("report-latency"),
  scoreChart: $("report-score-chart"),
  limbChart: $("report-limb-chart"),
  worst: $("report-worst"),
});
const library = new Library(
  {
    select: $("reference"),
    dancer: $("dancer"),
    dancerPlaceholder: $("dancer-placeholder"),
    form: $("upload-form"),
    button: $("upload-button"),
    pose: $("upload-pose"),
    progress: $("upload-progress"),
    bar: $("upload-bar"),
    label: $("upload-label"),
  },
  {
    feedback,
    onChange: () => {
      render();
      loadDancerKeypoints();
    },
  },
);
const summary = new SummaryDialog(
  {
    dialog: $("summary"),
    heading: $("summary-title"),
    reason: $("sum-reason"),
    average: $("sum-average"),
    processed: $("sum-processed"),
    skipped: $("sum-skipped"),
    pose: $("sum-pose"),
    worst: $("sum-worst"),
    error: $("summary-error"),
    closeButton: $("summary-close"),
    downloadKeypoints: $("download-keypoints"),
    downloadScores: $("download-scores"),
  },
  { onDownload: download, fallbackFocus: () => controls.start },
);

new TakeScorer(
  {
    form: $("take-form"),
    file: $("take-file"),
    button: $("take-button"),
    progress: $("take-progress"),
    bar: $("take-bar"),
    label: $("take-label"),
    download: $("take-download"),
  },
  { feedback, reference: () => library.selected, onScored: showTake },
);

let session = null;
let cameraAspect = 4 / 3; // the user's camera frame, from the returned video once it has a size
let moveLog = new MoveLog();
let dancerKeypoints = { id: null, keypoints: null };

/** The selected reference's keypoints, for the dancer's skeleton (once per reference). */
async function loadDancerKeypoints() {
  const ref = library.selected;
  if (!ref || dancerKeypoints.id === ref.id) return;
  dancerKeypoints = { id: ref.id, keypoints: null };
  overlay.setKeypoints(null);
  try {
    const parsed = parseKeypointsCsv(await referenceKeypoints(ref.id));
    const keypoints = { poses: parsed.poses, fps: ref.fps || parsed.fps };
    if (dancerKeypoints.id !== ref.id) return;
    dancerKeypoints.keypoints = keypoints;
    overlay.setKeypoints(keypoints);
  } catch (error) {
    console.warn("the dancer's skeleton is not drawn:", error);
  }
}

/** "idle" | "connecting" | "dancing" | "stopping" | "finished" (a session that never got an id ends idle). */
function pageState() {
  if (!session) return "idle";
  if (session.state === "finished") return session.id ? "finished" : "idle";
  return session.state;
}

function render() {
  const state = pageState();
  const busy = state === "connecting" || state === "dancing" || state === "stopping";
  document.body.dataset.state = state;
  controls.start.disabled = busy || !library.selected;
  controls.start.textContent = state === "finished" ? "Dance again" : "Start dancing";
  controls.stop.disabled = state !== "connecting" && state !== "dancing";
  controls.mirror.disabled = busy;
  controls.mosaic.disabled = busy;
  controls.keypointsOnly.disabled = busy;
  library.setLocked(busy);
}

async function start() {
  const reference = library.selected;
  if (!reference || session?.active) return;
  const returnedVideo = !controls.keypointsOnly.checked;
  const current = new Session({
    reference,
    mirror: controls.mirror.checked,
    mosaic: controls.mosaic.checked,
    returnedVideo,
    dancer: $("dancer"),
  });
  session = current;
  feedback.clearError();
  feedback.notice([]);
  scoreboard.reset();
  summary.hide();
  report.clear();
  moveLog = new MoveLog();
  passes.setLoop(practice.loop);
  overlay.setOff(null);
  youSkeleton.clear();
  $("you-caption").textContent = returnedVideo ? "annotated by the server" : "your camera, skeleton drawn here";
  follow(current);
  try {
    await current.start();
  } catch (error) {
    if (session === current) feedback.error(error);
  }
}

/** Show what `current` does while it is the page's session. */
function follow(current) {
  const mine = (handler) => (event) => session === current && handler(event.detail);
  current.addEventListener("state", mine(render));
  current.addEventListener("status", mine((text) => feedback.status(text)));
  current.addEventListener("warnings", mine((lines) => feedback.notice(lines)));
  current.addEventListener("track", mine(showReturnedVideo));
  current.addEventListener("pose", mine((pose) => youSkeleton.show(pose)));
  current.addEventListener(
    "score",
    mine((score) => {
      moveLog.addScore(score);
      passes.addScore(score);
      overlay.setOff(limbOfScore(score));
      scoreboard.showScore(current);
      if (passes.loop) scoreboard.showPasses(trendText(passes.summary()));
    }),
  );
  current.addEventListener(
    "move",
    mine((move) => {
      moveLog.addMove(move);
      passes.addMove(move);
      scoreboard.showVerdict(verdictText(move), move.tier);
      if (passes.loop) scoreboard.showPasses(trendText(passes.summary()));
    }),
  );
  current.addEventListener("fps", mine((fps) => scoreboard.showFps(fps)));
  current.addEventListener(
    "stats",
    mine((stats) => {
      scoreboard.showTicks(current);
      scoreboard.showLatency(latencyText(stats));
      feedback.notice([...current.warnings, ...failedTicksNotice(stats.errors)]);
    }),
  );
  current.addEventListener("closing", mine(freezeReturnedVideo));
  current.addEventListener("ended", mine(({ failed, reason }) => ended(current, failed, reason)));
}

function ended(current, failed, reason) {
  scoreboard.finish();
  if (failed && reason) {
    const after = current.id ? " The session has ended; the scores so far are in the summary." : "";
    feedback.error(new UserError(`${reason}${after}`));
  }
  render();
  if (!current.id) {
    feedback.status("Pick a dance and press Start.");
    return;
  }
  const figures = sessionSummary(current.tally, current.stats, current.endTime, current.reference.fps);
  summary.show(figures, { pose: current.pose, reason });
  showReport(current).catch((error) => console.warn("the report could not be drawn:", error));
  if (failed) feedback.status("The session ended early.");
  else if (reason) feedback.status(`The server ended the session: ${reason}`);
  else feedback.status("Session over. Download your CSVs or dance again.");
}

/** A scored recording (takes.js): the same summary and report as at the end of a live session; its CSVs download
 * as the session's. */
function showTake(take) {
  if (session?.active) return; // a live session owns the page; the take's files stay downloadable from its panel
  session = take;
  moveLog = new MoveLog();
  take.moves.forEach((move) => moveLog.addMove(move));
  take.scores.forEach((score) => moveLog.addScore(score));
  render();
  const figures = sessionSummary(take.tally, take.stats, NaN, take.reference.fps);
  summary.show(figures, { pose: take.pose, reason: null });
  showReport(take).catch((error) => console.warn("the report could not be drawn:", error));
  feedback.status("Your recording is scored. Download your CSVs or score another.");
}

/** The report under the summary: the session's scores and verdicts, the reference's moves, both skeletons. */
async function showReport(current) {
  const ref = current.reference;
  const [cut, user] = await Promise.all([
    referenceMoves(ref.id),
    sessionFile(current.id, current.token, "keypoints.csv")
      .then(async (blob) => parseKeypointsCsv(await blob.text()))
      .catch(() => null),
  ]);
  if (session !== current) return;
  await report.show({
    scores: current.tally.scores,
    moveLog,
    boundaries: Array.isArray(cut?.moves) ? cut.moves : [],
    stats: current.stats,
    dancer: dancerKeypoints.id === ref.id ? dancerKeypoints.keypoints : null,
    user,
    videoUrl: referenceVideoUrl(ref.id),
    cameraAspect,
  });
}

function showReturnedVideo(stream) {
  you.video.srcObject = stream;
  you.video.removeAttribute("poster");
  you.placeholder.hidden = true;
  you.video.play().catch(() => {}); // muted, so autoplay is allowed
}

/** Keep the last annotated frame on screen once the track ends. */
function freezeReturnedVideo() {
  const video = you.video;
  if (!video.videoWidth) return;
  cameraAspect = video.videoWidth / video.videoHeight;
  const canvas = Object.assign(document.createElement("canvas"), {
    width: video.videoWidth,
    height: video.videoHeight,
  });
  canvas.getContext("2d").drawImage(video, 0, 0);
  video.poster = canvas.toDataURL("image/jpeg", 0.85);
  video.srcObject = null;
}

async function download(name) {
  if (!session?.id) return;
  const blob = await sessionFile(session.id, session.token, name);
  const url = URL.createObjectURL(blob);
  const filename = exportFilename(session.reference, name);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

controls.start.addEventListener("click", start);
controls.stop.addEventListener("click", () => session?.stop());
scoreboard.reset();
render();
startProgress();
library.load().catch((error) => {
  feedback.status("Offline.");
  feedback.error(error);
});
