// The end-of-session summary, a modal <dialog>: it takes the focus when it opens (its heading, so a screen reader
// reads the title and the figures from the top), keeps it inside while open, closes on Escape or Close, and gives
// the focus back to where it was (or to Start, the next thing to do, when that control is now disabled).

import { describeError, UserError } from "./errors.js";
import { setScore } from "./scoreboard.js";

export class SummaryDialog {
  constructor(elements, { onDownload, fallbackFocus }) {
    Object.assign(this, elements); // dialog, heading, reason, average, processed, skipped, pose, worst, error,
    // closeButton, downloadKeypoints, downloadScores
    this.fallbackFocus = fallbackFocus;
    this.returnFocus = null;
    this.closeButton.addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => this.#closed());
    this.downloadKeypoints.addEventListener("click", () => this.#download(onDownload, "keypoints.csv"));
    this.downloadScores.addEventListener("click", () => this.#download(onDownload, "scores.csv"));
  }

  /** `summary` from score.sessionSummary; `reason` says why the session ended early (or null). */
  show(summary, { pose, reason }) {
    setScore(this.average, summary.average);
    this.processed.textContent = String(summary.processed);
    this.skipped.textContent = String(summary.skipped);
    this.worst.textContent = summary.worst ?? "–";
    this.pose.textContent = pose ?? "–";
    this.reason.textContent = reason ?? "";
    this.reason.hidden = !reason;
    this.#showError(null);
    this.returnFocus = document.activeElement;
    this.dialog.hidden = false;
    if (!this.dialog.open) this.dialog.showModal();
    this.heading.focus();
  }

  hide() {
    if (this.dialog.open) this.dialog.close();
    this.dialog.hidden = true;
  }

  #closed() {
    this.dialog.hidden = true;
    const back = this.returnFocus;
    this.returnFocus = null;
    const usable = back && back.isConnected && !back.disabled && back !== document.body;
    (usable ? back : this.fallbackFocus())?.focus();
  }

  async #download(onDownload, name) {
    this.#showError(null);
    try {
      await onDownload(name);
    } catch (error) {
      this.#showError(error instanceof UserError ? new UserError(`Download failed: ${error.message}`) : error);
    }
  }

  #showError(error) {
    this.error.textContent = error ? describeError(error) : "";
    this.error.hidden = !error;
  }
}
