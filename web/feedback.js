// What the page tells the user in words: the status line, the error box and notices (worth knowing, not
// failures). Each is written only when its text changes, so live regions announce news, not repeats.

import { describeError } from "./errors.js";

export class Feedback {
  constructor({ status, error, errorText, errorClose, notice }) {
    Object.assign(this, { statusLine: status, errorBox: error, errorText, noticeBox: notice });
    errorClose.addEventListener("click", () => this.clearError());
  }

  status(text) {
    if (this.statusLine.textContent !== text) this.statusLine.textContent = text;
  }

  /** Any error: a UserError's own words, else a generic sentence. */
  error(error) {
    this.errorText.textContent = describeError(error);
    this.errorBox.hidden = false;
  }

  clearError() {
    this.errorBox.hidden = true;
    this.errorText.textContent = "";
  }

  /** Notice lines (the server's warnings about a session, failed ticks); none hides the box. */
  notice(lines) {
    const text = lines.join(" ");
    if (this.noticeBox.textContent !== text) this.noticeBox.textContent = text;
    this.noticeBox.hidden = lines.length === 0;
  }
}
