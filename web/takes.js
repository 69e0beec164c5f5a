// "Score a recording": a video of you dancing to the selected reference's song, sent to the server, which
// places it on the dance by its sound and scores it as a live session (docs/api.md, "Recorded takes"). The
// panel follows the scoring job, then hands the scored take to the page, which shows the same summary and
// report as at the end of a live session; the side-by-side video is offered for download.

import { getJob, postTake, sessionFile, sessionRecord } from "./api.js";
import { UserError } from "./errors.js";
import { profileToken } from "./progress.js";
import { ScoreTally } from "./score.js";

const JOB_POLL_MS = 500;

/** Rows of a session CSV (stream/csvsafe: no quoted commas in these files) as objects keyed by the header. */
export function parseCsvRows(text) {
  const lines = String(text).trim().split(/\r?\n/);
  const header = lines.shift()?.split(",") ?? [];
  return lines.filter(Boolean).map((line) => {
    const cells = line.split(",");
    return Object.fromEntries(header.map((name, i) => [name, cells[i] ?? ""]));
  });
}

const number = (text) => (text === "" || text == null ? null : Number(text));
const word = (text) => (text ? String(text).replace(/^'/, "") : null);

/** The scored take as the page's live session would hold it: score and move messages, and its stats. */
export function takeResults(scoresCsv, movesCsv, record) {
  const scores = parseCsvRows(scoresCsv).map((row) => ({
    type: "score",
    tick: number(row.tick),
    t: number(row.time_s),
    score: number(row.score),
    raw: number(row.raw),
    worst: word(row.worst),
    limb: word(row.limb),
    move: number(row.move),
  }));
  const moves = parseCsvRows(movesCsv).map((row) => ({
    type: "move",
    move: number(row.move),
    start: number(row.start_s),
    end: number(row.end_s),
    tier: word(row.tier),
    score: number(row.score),
    limb: word(row.limb),
    offset_ms: number(row.offset_ms),
  }));
  const stats = {
    type: "stats",
    processed: record.processed,
    skipped: 0,
    errors: record.errors ?? 0,
    latency_ms: record.latency_ms,
    latency_confident: Boolean(record.latency_confident),
  };
  return { scores, moves, stats };
}

/** "placed 0.437 s into your recording (confidence 0.87)" */
export function alignmentText(take) {
  if (!take || !Number.isFinite(take.offset_s)) return "";
  const s = Math.abs(take.offset_s).toFixed(2);
  const where =
    take.offset_s >= 0 ? `the song starts ${s} s into your recording` : `your recording starts ${s} s into the song`;
  return `${where} (confidence ${Number(take.confidence).toFixed(2)})`;
}

export class TakeScorer {
  /** `reference()` the selected reference or null; `onScored(take)` shows a scored take. */
  constructor(elements, { feedback, reference, onScored }) {
    Object.assign(this, elements); // form, file, button, progress, bar, label, download
    this.feedback = feedback;
    this.reference = reference;
    this.onScored = onScored;
    this.take = null;
    this.form.addEventListener("submit", (event) => this.#submit(event));
    this.download.addEventListener("click", () => this.#download().catch((error) => this.feedback.error(error)));
  }

  async #submit(event) {
    event.preventDefault();
    const reference = this.reference();
    if (!reference) {
      this.feedback.error(new UserError("Pick the dance your recording is of first."));
      return;
    }
    const form = new FormData();
    form.append("video", this.file.files[0]);
    this.feedback.clearError();
    this.button.disabled = true;
    this.download.hidden = true;
    try {
      this.#progress(0, "Uploading…");
      const onProgress = (share) => this.#progress(share, `Uploading… ${Math.round(share * 100)}%`);
      const created = await postTake(reference.id, form, onProgress, profileToken());
      await this.#follow(created.job);
      const [record, scores, moves] = await Promise.all([
        sessionRecord(created.session, created.token),
        sessionFile(created.session, created.token, "scores.csv").then((blob) => blob.text()),
        sessionFile(created.session, created.token, "moves.csv").then((blob) => blob.text()),
      ]);
      const results = takeResults(scores, moves, record);
      const tally = new ScoreTally();
      results.scores.forEach((score) => tally.add(score));
      this.take = {
        id: created.session,
        token: created.token,
        reference,
        record,
        tally,
        stats: results.stats,
        scores: results.scores,
        moves: results.moves,
        pose: record.pose,
        state: "finished",
        active: false,
      };
      this.#progress(1, `Scored: ${alignmentText(record.take)}.`);
      this.download.hidden = !record.take?.video;
      this.form.reset();
      this.onScored(this.take);
    } catch (error) {
      this.progress.hidden = true;
      const why = error instanceof UserError ? new UserError(`Scoring the recording failed: ${error.message}`) : null;
      this.feedback.error(why ?? error);
    } finally {
      this.button.disabled = false;
    }
  }

  async #follow(job) {
    for (;;) {
      const { state, progress, error } = await getJob(job);
      if (state === "done") return;
      if (state === "failed") throw new UserError(error || "no reason given");
      const share = Number(progress) || 0;
      const percent = Math.round(share * 100);
      const label = state === "queued" ? "Waiting for the scorer…" : `Scoring your recording… ${percent}%`;
      this.#progress(share, label);
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
  }

  #progress(share, label) {
    this.progress.hidden = false;
    this.bar.value = share;
    this.label.textContent = label;
  }

  async #download() {
    const take = this.take;
    if (!take) return;
    const blob = await sessionFile(take.id, take.token, "take.mp4");
    const url = URL.createObjectURL(blob);
    const link = Object.assign(document.createElement("a"), { href: url, download: `dancesync-${take.id}-take.mp4` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
