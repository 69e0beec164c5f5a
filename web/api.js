// The HTTP side of the API (docs/api.md): one function per /api/* request the page makes. Failures are
// UserErrors carrying the server's own words.

import { UserError } from "./errors.js";
import { errorText, parseAnswer, ProtocolError } from "./protocol.js";

const UNREACHABLE = "Can't reach the dancesync server. Is it running? Reload the page once it is.";

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new UserError(UNREACHABLE);
  }
  if (!response.ok) throw new UserError(await failureText(response));
  return response;
}

async function failureText(response) {
  let body = "";
  try {
    body = (await response.text()).trim();
  } catch {
    // the body is gone too; the status is all there is
  }
  return errorText(body, response.status, response.statusText);
}

const getJSON = async (path) => (await request(path)).json();
const part = encodeURIComponent;

/** `[{"id", "title", "fps", "duration_s", "ticks", "pose"}]` */
export const listReferences = () => getJSON("/api/references");

/** `{"default", "backends": [names]}`, the default first. */
export const listBackends = () => getJSON("/api/backends");

/** The reference builds not finished yet. */
export const listJobs = () => getJSON("/api/jobs");

/** `{"state": "queued" | "running" | "done" | "failed", "progress", "error", "reference", "pose"}` */
export const getJob = (job) => getJSON(`/api/jobs/${part(job)}`);

export const referenceVideoUrl = (id) => `/api/references/${part(id)}/video`;

/** The reference's keypoint CSV (docs/csv.md), as text. */
export const referenceKeypoints = async (id) => (await request(`/api/references/${part(id)}/keypoints.csv`)).text();

/** `{"source", "moves": [{"move", "start", "end"}]}`; null from a server that does not cut moves. */
export async function referenceMoves(id) {
  try {
    return await getJSON(`/api/references/${part(id)}/moves.json`);
  } catch {
    return null;
  }
}

/** POST the offer body (protocol.offerBody); the parsed answer. */
export async function postOffer(body) {
  let response;
  try {
    response = await request("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw error instanceof UserError ? new UserError(`The server refused the session: ${error.message}`) : error;
  }
  try {
    return parseAnswer(await response.json());
  } catch (error) {
    const why = error instanceof ProtocolError ? error.message : "its answer is not JSON";
    throw new UserError(`The server refused the session: ${why}.`);
  }
}

/** One of a session's exports (`keypoints.csv`, `scores.csv`) as a Blob; the token proves it is ours. */
export async function sessionFile(session, token, name) {
  const path = `/api/sessions/${part(session)}/${part(name)}`;
  return (await request(path, { headers: { Authorization: `Bearer ${token}` } })).blob();
}

/** A session's record (`GET /api/sessions/{id}`); a recorded take's has `take`, its alignment. */
export async function sessionRecord(session, token) {
  return (await request(`/api/sessions/${part(session)}`, { headers: { Authorization: `Bearer ${token}` } })).json();
}

/** POST a recording of the reference `id` (the form's `video`) for scoring, listed for `profile` (a profile
 * token, or null); resolves to `{"job", "session", "token"}`. */
export function postTake(id, form, onProgress, profile = null) {
  const headers = profile ? { Authorization: `Bearer ${profile}` } : {};
  return postForm(`/api/references/${part(id)}/takes`, form, onProgress, headers);
}

/** POST a reference upload with XMLHttpRequest, the one browser API that reports upload progress;
 * resolves to `{"id", "job"}`. */
export const uploadReference = (form, onProgress) => postForm("/api/references", form, onProgress);

function postForm(path, form, onProgress, headers = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new UserError(UNREACHABLE));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText));
      } else {
        reject(new UserError(`the server rejected it: ${errorText(xhr.responseText, xhr.status, xhr.statusText)}`));
      }
    };
    xhr.send(form);
  });
}
