// Words and names the page shows or saves. Pure: no DOM.

/** 83.4 → "1:23"; "?" when unknown. */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** A reference as listed: "Sample · 1:20 · 10 ticks/s · movenet-lightning". */
export function referenceLabel(ref) {
  const pose = ref.pose ? ` · ${ref.pose}` : "";
  return `${ref.title || ref.id} · ${formatDuration(ref.duration_s)} · ${ref.fps} ticks/s${pose}`;
}

/** A file-name-safe form of a title: "Salsa, take 2!" → "salsa-take-2" ("session" when nothing is left). */
export function slug(text) {
  return (
    String(text)
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "") || "session"
  );
}

/** The name a session export is saved under. */
export function exportFilename(ref, name) {
  return `dancesync-${slug(ref.title || ref.id)}-${name}`;
}

/** "The server could not analyse 3 ticks; they count as skipped." or nothing when there were no failures. */
export function failedTicksNotice(errors) {
  if (!errors) return [];
  return [`The server could not analyse ${errors} tick${errors === 1 ? "" : "s"}; they count as skipped.`];
}
