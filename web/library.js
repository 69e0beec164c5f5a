// The reference library: the dance picker (which loads the dancer video), references still being built, and
// the upload panel (send with progress, then follow the extraction job until the new reference is listed).

import { getJob, listBackends, listJobs, listReferences, referenceVideoUrl, uploadReference } from "./api.js";
import { UserError } from "./errors.js";
import { referenceLabel } from "./format.js";

const JOB_POLL_MS = 500;
const PENDING_POLL_MS = 1000;

/**
 * `onChange()` runs whenever what can be started changes (the selection, the list, an upload starting or
 * ending); `setLocked(true)` freezes the picker and the dancer video during a session.
 */
export class Library {
  constructor(elements, { feedback, onChange }) {
    Object.assign(this, elements); // select, dancer, dancerPlaceholder, form, button, pose, progress, bar, label
    this.feedback = feedback;
    this.onChange = onChange;
    this.references = [];
    this.uploading = false;
    this.locked = false;
    this.select.addEventListener("change", () => this.#selectionChanged());
    this.dancer.addEventListener("error", () => this.#dancerFailed());
    this.form.addEventListener("submit", (event) => this.#upload(event));
  }

  /** The selected reference, or null. */
  get selected() {
    return this.references.find((ref) => ref.id === this.select.value) ?? null;
  }

  setLocked(locked) {
    this.locked = locked;
    this.select.disabled = locked || this.references.length === 0;
    this.button.disabled = locked || this.uploading;
    if (!locked) this.#showDancer();
  }

  /** The backends list, then the references; then, while some are still being built, say so and list them when
   * done. */
  async load() {
    this.#loadBackends().catch((error) => this.feedback.error(error));
    await this.refresh();
    await this.#watchPending();
  }

  async refresh(selectId = this.select.value) {
    this.references = await listReferences();
    const options = this.references.map((ref) => new Option(referenceLabel(ref), ref.id));
    if (options.length === 0) options.push(new Option("No references yet", ""));
    this.select.replaceChildren(...options);
    if (this.references.some((ref) => ref.id === selectId)) this.select.value = selectId;
    if (!this.locked) {
      const some = this.references.length > 0;
      this.feedback.status(some ? "Pick a dance and press Start." : "No references yet: add a video.");
    }
    this.#selectionChanged();
  }

  /** The pose models the server offers, for the upload form; the server's default comes first. */
  async #loadBackends() {
    const { backends } = await listBackends();
    const options = backends.map((name, i) => new Option(i === 0 ? `${name} (default)` : name, name));
    this.pose.replaceChildren(...options);
  }

  /** References still being built (e.g. the sample, seeded at first start). */
  async #watchPending() {
    let waited = false;
    for (;;) {
      let pending;
      try {
        pending = await listJobs();
      } catch {
        return; // an older server without the list, or it is gone: the reference list says enough
      }
      if (pending.length === 0) break;
      waited = true;
      const job = pending[0];
      if (this.references.length === 0 && !this.locked) {
        this.feedback.status(`Preparing “${job.title}”: ${Math.round((job.progress || 0) * 100)}%…`);
      }
      await sleep(PENDING_POLL_MS);
    }
    if (waited) await this.refresh();
  }

  #selectionChanged() {
    this.setLocked(this.locked);
    this.onChange();
  }

  #showDancer() {
    const ref = this.selected;
    if (!ref) return;
    const src = referenceVideoUrl(ref.id);
    if (this.dancer.getAttribute("src") !== src) {
      this.dancer.src = src;
      this.dancer.load();
    }
    this.dancerPlaceholder.hidden = true;
  }

  #dancerFailed() {
    if (!this.dancer.getAttribute("src")) return;
    const why = this.dancer.error?.code === 4 ? "this browser can't decode it" : "it could not be loaded";
    this.feedback.error(new UserError(`The dancer video can't be played: ${why}.`));
  }

  async #upload(event) {
    event.preventDefault();
    const form = new FormData(this.form);
    if (!form.get("title")) form.delete("title");
    this.feedback.clearError();
    this.#setUploading(true);
    try {
      this.#progress(0, "Uploading…");
      const { id, job } = await uploadReference(form, (share) =>
        this.#progress(share, `Uploading… ${Math.round(share * 100)}%`),
      );
      await this.#followJob(job);
      await this.refresh(id);
      this.#progress(1, "Added. It is selected above.");
      this.form.reset();
    } catch (error) {
      this.progress.hidden = true;
      this.feedback.error(error instanceof UserError ? new UserError(`Upload failed: ${error.message}`) : error);
    } finally {
      this.#setUploading(false);
    }
  }

  #setUploading(uploading) {
    this.uploading = uploading;
    this.setLocked(this.locked);
    this.onChange();
  }

  #progress(share, label) {
    this.progress.hidden = false;
    this.bar.value = share;
    this.label.textContent = label;
  }

  async #followJob(job) {
    for (;;) {
      const { state, progress, error } = await getJob(job);
      if (state === "done") return;
      if (state === "failed") throw new UserError(`extracting the keypoints failed: ${error || "no reason given"}`);
      const share = Number(progress) || 0;
      const label =
        state === "queued" ? "Waiting for the extractor…" : `Extracting keypoints… ${Math.round(share * 100)}%`;
      this.#progress(share, label);
      await sleep(JOB_POLL_MS);
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
