// Progress over time: this browser's anonymous profile and its past sessions for the chosen reference.
//
// The profile is a random token kept in localStorage (no account, no e-mail). Each offer carries it
// (protocol.offerBody's `profile`); the server keeps only its SHA-256 and lists the profile's ended sessions at
// GET /api/profile/sessions (Authorization: Bearer <profile>), whose CSVs the same token downloads. Clearing the
// site's data forgets the profile; nothing else can recover it.
//
// The panel is a table plus an inline SVG sparkline of each session's mean score (no chart library is vendored).
// The pure parts (token shape, sparkline points, rows) take no DOM, so node --test runs them.

const STORAGE_KEY = "dancesync.profile";
const TOKEN = /^[A-Za-z0-9_-]{43}$/;
const REFRESH_AFTER_MS = 1500; // a session is stored when it has ended; list again a moment after

/** A new profile token: 32 random bytes as unpadded base64url (43 characters), the shape the server accepts. */
export function newProfileToken(random = (bytes) => crypto.getRandomValues(bytes)) {
  const bytes = random(new Uint8Array(32));
  const text = btoa(String.fromCharCode(...bytes));
  return text.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export const isProfileToken = (value) => typeof value === "string" && TOKEN.test(value);

/** This browser's profile token, created and kept on first use; null when storage is unavailable (then the
 * sessions are simply not listed). */
export function profileToken(storage = globalThis.localStorage) {
  try {
    let token = storage.getItem(STORAGE_KEY);
    if (!isProfileToken(token)) {
      token = newProfileToken();
      storage.setItem(STORAGE_KEY, token);
    }
    return token;
  } catch {
    return null;
  }
}

/** SVG polyline points for `scores` (0..100, null where a session scored nothing) in a width x height box,
 * oldest left; sessions without a score are left out of the line. */
export function sparklinePoints(scores, width, height, pad = 2) {
  const step = scores.length > 1 ? (width - 2 * pad) / (scores.length - 1) : 0;
  const y = (score) => pad + (height - 2 * pad) * (1 - Math.min(100, Math.max(0, score)) / 100);
  return scores
    .map((score, i) => (score === null ? null : `${round(pad + i * step)},${round(y(score))}`))
    .filter((point) => point !== null)
    .join(" ");
}

/** The table's cells for one session entry of GET /api/profile/sessions. */
export function sessionRow(entry, locale = undefined) {
  return {
    started: new Date(entry.started * 1000).toLocaleString(locale),
    score: entry.mean_score === null ? "–" : entry.mean_score.toFixed(1),
    ticks: String(entry.ticks),
    files: entry.files,
  };
}

const round = (value) => Math.round(value * 10) / 10;

/** Fill the progress section of `doc` and keep it current: on a change of reference and after each session. */
export function startProgress(doc = document) {
  const section = doc.getElementById("progress");
  const select = doc.getElementById("reference");
  const token = profileToken();
  if (!section || !select || !token) return;
  const table = doc.getElementById("progress-rows");
  const chart = doc.getElementById("progress-line");
  const note = doc.getElementById("progress-note");

  async function refresh() {
    const reference = select.value;
    if (!reference) return;
    let sessions = [];
    try {
      const response = await fetch(`/api/profile/sessions?reference=${encodeURIComponent(reference)}`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (!response.ok) return;
      sessions = (await response.json()).sessions;
    } catch {
      return; // the page's own status line reports an unreachable server
    }
    if (select.value !== reference) return;
    section.hidden = sessions.length === 0;
    note.textContent = `${sessions.length} past session${sessions.length === 1 ? "" : "s"} of this dance in this browser.`;
    const box = chart.ownerSVGElement.viewBox.baseVal;
    chart.setAttribute("points", sparklinePoints(sessions.map((s) => s.mean_score), box.width, box.height));
    table.replaceChildren(...sessions.map((entry) => rowElement(doc, entry, token)));
  }

  select.addEventListener("change", refresh);
  new MutationObserver(refresh).observe(select, { childList: true });
  new MutationObserver(() => setTimeout(refresh, REFRESH_AFTER_MS)).observe(doc.body, {
    attributes: true,
    attributeFilter: ["data-state"],
  });
  refresh();
}

function rowElement(doc, entry, token) {
  const cells = sessionRow(entry);
  const row = doc.createElement("tr");
  for (const text of [cells.started, cells.score, cells.ticks]) {
    const cell = doc.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  const links = doc.createElement("td");
  for (const name of cells.files) {
    const button = doc.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = name;
    button.addEventListener("click", () => download(doc, entry.session, name, token));
    links.append(button, " ");
  }
  row.append(links);
  return row;
}

/** Fetch with the profile's token in a header (not the URL, where history and logs would keep it) and save. */
async function download(doc, session, name, token) {
  const response = await fetch(`/api/sessions/${encodeURIComponent(session)}/${name}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) return;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(doc.createElement("a"), { href: url, download: `dancesync-${session}-${name}` });
  doc.body.append(link); // Firefox follows only a link in the document
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
