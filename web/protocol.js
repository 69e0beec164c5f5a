// The wire messages as the page builds and reads them, one function each; the server's side is
// stream/protocol.py and both follow docs/api.md. Pure: no DOM, no network, so node --test runs it.
//
//   POST /api/offer   page → server  {"sdp", "type": "offer", "reference", "mirror"?, "fps"?, "pose"?, "profile"?,
//                                     "mosaic"?, "returned_video"?: false for keypoints-only}
//                     server → page  {"sdp", "type": "answer", "session", "token", "pose", "warnings"}
//   `control` channel page → server  {"type": "clock", "t": dancer media time (s), "playing": bool}
//                     server → page  {"type": "score", "tick", "t", "score": 0..100, "worst": part | null,
//                                     "raw"?: 0..100, "limb"?: limb | null, "move"?: int | null}
//                                    {"type": "move", "move", "start", "end", "tier", "score", "limb", "offset_ms"}
//                                    {"type": "pose", "tick", "t", "keypoints": 18 x ([x, y, confidence] | null),
//                                     "limb"} (keypoints-only sessions, before each tick's score)
//                                    {"type": "stats", "processed", "skipped", "errors", "fps", "webcam_fps",
//                                     "tick_fps", "inference_ms", "latency_ms"?, "latency_confident"?}
//                                    {"type": "end", "reason": a sentence for the user}, then the channel closes
//
// Parsers return null for anything that is not a well-formed message of a known type, so a newer server's
// additions are ignored rather than misread.

export const CONTROL_LABEL = "control";

/** A move's tiers, best first. */
export const TIERS = ["perfect", "good", "ok", "miss"];

/** Longest `reason` shown from an end message; the rest is cut (the server's sentences are short). */
export const MAX_REASON_LENGTH = 300;

/** The clock message for dancer media time `t` (s): t is finite, >= 0 and rounded to the millisecond. */
export function clockMessage(t, playing) {
  const time = Number.isFinite(t) ? Math.max(0, t) : 0;
  return { type: "clock", t: Math.round(time * 1000) / 1000, playing: Boolean(playing) };
}

/** The `POST /api/offer` body; fps and pose are left out unless given (the server then uses the reference's);
 * `profile` is the browser's anonymous profile token (progress.js), left out when null; `mosaic` false asks for
 * the returned video with faces left as they are (left out when null: the server mosaics them); `returnedVideo`
 * false asks for keypoints instead of the annotated video. */
export function offerBody({
  sdp,
  reference,
  mirror = true,
  fps = null,
  pose = null,
  profile = null,
  mosaic = null,
  returnedVideo = true,
}) {
  const body = { sdp, type: "offer", reference, mirror: Boolean(mirror) };
  if (!returnedVideo) body.returned_video = false;
  if (fps !== null) body.fps = fps;
  if (pose !== null) body.pose = pose;
  if (profile !== null) body.profile = profile;
  if (mosaic !== null) body.mosaic = Boolean(mosaic);
  return body;
}

/** The answer to an offer; throws ProtocolError when it lacks what a session needs. */
export function parseAnswer(body) {
  if (!isObject(body) || typeof body.sdp !== "string" || body.type !== "answer") {
    throw new ProtocolError("the server's answer to the offer is not an SDP answer");
  }
  if (typeof body.session !== "string" || typeof body.token !== "string") {
    throw new ProtocolError("the server's answer names no session");
  }
  const warnings = Array.isArray(body.warnings) ? body.warnings.filter((w) => typeof w === "string") : [];
  const pose = typeof body.pose === "string" ? body.pose : null;
  return { sdp: body.sdp, type: "answer", session: body.session, token: body.token, pose, warnings };
}

/** A message received on `control` (its text), typed and checked; null for anything else. */
export function parseControlMessage(text) {
  if (typeof text !== "string") return null;
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(message)) return null;
  const parse = PARSERS[message.type];
  return parse ? parse(message) : null;
}

const PARSERS = {
  score(m) {
    if (!isCount(m.tick) || !isFiniteNumber(m.t) || !isFiniteNumber(m.score)) return null;
    if (m.worst !== null && m.worst !== undefined && typeof m.worst !== "string") return null;
    const score = clamp(m.score);
    const raw = isFiniteNumber(m.raw) ? clamp(m.raw) : null;
    const limb = typeof m.limb === "string" && m.limb ? m.limb : null;
    const move = isCount(m.move) ? m.move : null;
    return { type: "score", tick: m.tick, t: m.t, score, worst: m.worst || null, raw, limb, move };
  },
  move(m) {
    if (!isCount(m.move) || !isFiniteNumber(m.start) || !isFiniteNumber(m.end) || !isFiniteNumber(m.score)) return null;
    if (!TIERS.includes(m.tier)) return null;
    const limb = typeof m.limb === "string" && m.limb ? m.limb : null;
    const offset = isFiniteNumber(m.offset_ms) ? m.offset_ms : null;
    return { type: "move", move: m.move, start: m.start, end: m.end, tier: m.tier, score: clamp(m.score), limb, offset_ms: offset };
  },
  pose(m) {
    if (!isCount(m.tick) || !isFiniteNumber(m.t) || !Array.isArray(m.keypoints)) return null;
    const point = (k) => k === null || (Array.isArray(k) && k.length === 3 && k.every(isFiniteNumber));
    if (m.keypoints.length > 64 || !m.keypoints.every(point)) return null;
    const limb = typeof m.limb === "string" && m.limb ? m.limb : null;
    return { type: "pose", tick: m.tick, t: m.t, keypoints: m.keypoints, limb };
  },
  stats(m) {
    const counts = ["processed", "skipped", "errors"];
    const rates = ["fps", "webcam_fps", "tick_fps", "inference_ms"];
    if (!counts.every((key) => m[key] === undefined || isCount(m[key]))) return null;
    const stats = { type: "stats" };
    for (const key of counts) stats[key] = m[key] ?? 0;
    for (const key of rates) stats[key] = isFiniteNumber(m[key]) ? m[key] : null;
    stats.latency_ms = isFiniteNumber(m.latency_ms) ? m.latency_ms : null;
    stats.latency_confident = m.latency_confident === true && stats.latency_ms !== null;
    return stats;
  },
  end(m) {
    const reason = typeof m.reason === "string" ? m.reason.trim().slice(0, MAX_REASON_LENGTH) : "";
    return { type: "end", reason: reason || "The server ended the session." };
  },
};

/** The server's own words for a failed request: its JSON {"error"} (or "message", "detail") or its text. */
export function errorText(body, status, statusText = "") {
  let detail = body;
  try {
    const parsed = JSON.parse(body);
    detail = isObject(parsed) ? (parsed.error ?? parsed.message ?? parsed.detail ?? body) : body;
  } catch {
    // plain text
  }
  detail = String(detail)
    .replace(/<[^>]*>/g, " ")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 300);
  return detail ? `${detail} (HTTP ${status})` : `The server answered HTTP ${status} ${statusText}`.trim();
}

/** An answer from the server that does not follow the API. */
export class ProtocolError extends Error {}

const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
const isFiniteNumber = (value) => typeof value === "number" && Number.isFinite(value);
const clamp = (value) => Math.min(Math.max(value, 0), 100);
const isCount = (value) => Number.isSafeInteger(value) && value >= 0;
