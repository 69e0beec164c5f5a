// Skeletons from keypoint CSVs (docs/csv.md): the 18 parts, the edges drawn, the limb each part belongs to and
// its colour, the CSV parsed into one pose per tick, and the pose on screen at a media time. Pure: no DOM.
// Parts, edges and limbs follow pose/parts.py and pose/limbs.py (named there; repeated here because the page has
// no build step to share them).

export const PARTS = [
  "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee",
  "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
]; // prettier-ignore

const P = Object.fromEntries(PARTS.map((name, i) => [name, i]));

/** The skeleton edges drawn (pose.parts.SKELETON_EDGES), as part indices. */
export const EDGES = [
  ["neck", "r_shoulder"], ["neck", "l_shoulder"], ["r_shoulder", "r_elbow"], ["r_elbow", "r_wrist"],
  ["l_shoulder", "l_elbow"], ["l_elbow", "l_wrist"], ["neck", "r_hip"], ["r_hip", "r_knee"], ["r_knee", "r_ankle"],
  ["neck", "l_hip"], ["l_hip", "l_knee"], ["l_knee", "l_ankle"], ["neck", "nose"], ["nose", "r_eye"],
  ["r_eye", "r_ear"], ["nose", "l_eye"], ["l_eye", "l_ear"],
].map(([a, b]) => [P[a], P[b]]); // prettier-ignore

/** The limb keys of the wire (pose.limbs.Limb). */
export const LIMBS = ["left_arm", "right_arm", "left_leg", "right_leg", "torso", "head"];

/** Shoulders, elbows and wrists go with their arm, knees and ankles with their leg, neck and hips are the torso,
 * the rest (nose, eyes, ears) the head. */
export function limbOfPart(name) {
  if (name === "neck" || name === "r_hip" || name === "l_hip") return "torso";
  const side = name.startsWith("l_") ? "left" : "right";
  if (/_(shoulder|elbow|wrist)$/.test(name)) return `${side}_arm`;
  if (/_(knee|ankle)$/.test(name)) return `${side}_leg`;
  return "head";
}

export const LIMB_OF_PART = PARTS.map(limbOfPart);

/** An edge belongs to the limb of its outer part (as pose.limbs.LIMB_OF_EDGE). */
export const LIMB_OF_EDGE = EDGES.map(([, b]) => LIMB_OF_PART[b]);

/** Each limb's colour; the limb the server says is off is drawn in OFF_COLOUR instead. */
export const LIMB_COLOURS = {
  left_arm: "#4fc3f7",
  right_arm: "#ffb347",
  left_leg: "#3ddc84",
  right_leg: "#c792ea",
  torso: "#f5f5f5",
  head: "#ffe066",
};
export const OFF_COLOUR = "#ff2d2d";

/** "left_arm" → "left arm". */
export const limbName = (key) => String(key).replace(/_/g, " ");

/**
 * A keypoint CSV's person-0 rows: `{ poses: Map(tick → Float32Array(18 * 3) of x, y, score, NaN where not
 * found), fps }`; fps from the first two rows' tick and time_s (null with fewer than two rows). Throws on a
 * header without the tick, person or part columns.
 */
export function parseKeypointsCsv(text) {
  const lines = String(text).split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length === 0) throw new Error("the keypoint CSV is empty");
  const header = lines[0].split(",").map((name) => name.trim());
  const column = (name) => {
    const index = header.indexOf(name);
    if (index < 0) throw new Error(`the keypoint CSV has no ${name} column`);
    return index;
  };
  const tickCol = column("tick");
  const timeCol = header.indexOf("time_s");
  const personCol = column("person");
  const partCols = PARTS.map((name) => [column(`${name}_x`), column(`${name}_y`), column(`${name}_score`)]);
  const poses = new Map();
  const times = [];
  for (const line of lines.slice(1)) {
    const cells = line.split(",");
    if (Number(cells[personCol]) !== 0) continue;
    const tick = Number(cells[tickCol]);
    if (!Number.isSafeInteger(tick) || tick < 0) continue;
    const pose = new Float32Array(PARTS.length * 3);
    partCols.forEach((cols, part) => cols.forEach((col, k) => (pose[part * 3 + k] = number(cells[col]))));
    poses.set(tick, pose);
    if (timeCol >= 0 && times.length < 2) times.push([tick, Number(cells[timeCol])]);
  }
  let fps = null;
  if (times.length === 2 && times[1][1] > times[0][1]) fps = (times[1][0] - times[0][0]) / (times[1][1] - times[0][1]);
  return { poses, fps: fps && Math.round(fps * 1000) / 1000 };
}

const number = (cell) => (cell === undefined || cell.trim() === "" ? NaN : Number(cell));

/** The tick on screen at media time `t` (s) at `fps` ticks/s: floor(t * fps), never below 0 (a hair of slack so
 * t = k / fps computed in floating point lands on k). */
export function tickAt(t, fps) {
  if (!Number.isFinite(t) || !(fps > 0)) return 0;
  return Math.max(0, Math.floor(t * fps + 1e-6));
}

/**
 * The lines to draw for `pose` (one parseKeypointsCsv row) in a `width` x `height` box: `[{ limb, colour, from:
 * [x, y], to: [x, y] }]` for each edge with both parts found, and `joints: [{ limb, colour, at: [x, y] }]`. The
 * limb `off` (a limb key or null) is drawn in OFF_COLOUR. `box` = { x, y, width, height } places the frame.
 */
export function skeletonShapes(pose, box, off = null) {
  const colour = (limb) => (limb === off ? OFF_COLOUR : LIMB_COLOURS[limb]);
  const at = (part) => {
    const x = pose[part * 3];
    const y = pose[part * 3 + 1];
    return Number.isFinite(x) && Number.isFinite(y) ? [box.x + x * box.width, box.y + y * box.height] : null;
  };
  const lines = [];
  EDGES.forEach(([a, b], i) => {
    const from = at(a);
    const to = at(b);
    if (from && to) lines.push({ limb: LIMB_OF_EDGE[i], colour: colour(LIMB_OF_EDGE[i]), from, to });
  });
  const joints = [];
  PARTS.forEach((_, part) => {
    const point = at(part);
    if (point) joints.push({ limb: LIMB_OF_PART[part], colour: colour(LIMB_OF_PART[part]), at: point });
  });
  return { lines, joints };
}

/** A `pose` message's keypoints (protocol.js) as a pose of parseKeypointsCsv's shape: Float32Array(18 * 3) of
 * x, y, score, NaN where the part was not found. */
export function poseOfKeypoints(keypoints) {
  const pose = new Float32Array(PARTS.length * 3).fill(NaN);
  PARTS.forEach((_, part) => {
    const point = keypoints?.[part];
    if (Array.isArray(point)) pose.set(point.slice(0, 3), part * 3);
  });
  return pose;
}

/** Where a `videoWidth` x `videoHeight` frame shows in a `width` x `height` element with object-fit: contain. */
export function containBox(videoWidth, videoHeight, width, height) {
  if (!(videoWidth > 0 && videoHeight > 0)) return { x: 0, y: 0, width, height };
  const scale = Math.min(width / videoWidth, height / videoHeight);
  const w = videoWidth * scale;
  const h = videoHeight * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, width: w, height: h };
}

/**
 * The stretch of the frame to show around `pose`: its found parts' box grown by `margin` on each side, at least
 * `min` of the frame's height, widened or heightened to `aspect` (width / height of where it is drawn, in
 * pixels) for a frame of `frameAspect` (its width / height). In normalised frame coordinates ({ x, y, width,
 * height }, may reach past the frame's edges); null when no part was found.
 */
export function poseCrop(pose, aspect, frameAspect, margin = 0.3, min = 0.2) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let part = 0; part < PARTS.length; part += 1) {
    const x = pose[part * 3] * frameAspect; // in frame heights, so both axes share a unit
    const y = pose[part * 3 + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  }
  if (x0 === Infinity) return null;
  const grow = 1 + 2 * margin;
  const height = Math.max((y1 - y0) * grow, ((x1 - x0) * grow) / aspect, min);
  const width = height * aspect;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  return { x: (cx - width / 2) / frameAspect, y: cy - height / 2, width: width / frameAspect, height };
}

/** The skeletonShapes box that draws the frame region `crop` (normalised) into `dest` (pixels). */
export function cropBox(crop, dest) {
  const width = dest.width / crop.width;
  const height = dest.height / crop.height;
  return { x: dest.x - crop.x * width, y: dest.y - crop.y * height, width, height };
}
