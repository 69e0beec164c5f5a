// Keypoint CSVs into skeletons: parsing, the tick at a media time, limb colours, the off limb in red.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  containBox,
  EDGES,
  LIMB_COLOURS,
  LIMB_OF_PART,
  OFF_COLOUR,
  poseOfKeypoints,
  PARTS,
  parseKeypointsCsv,
  skeletonShapes,
  tickAt,
} from "../../web/skeleton.js";

const HEADER = ["tick", "time_s", "person", ...PARTS.flatMap((p) => [`${p}_x`, `${p}_y`, `${p}_score`])].join(",");
const row = (tick, person, parts) =>
  [tick, (tick / 10).toFixed(3), person, ...PARTS.flatMap((p) => parts[p] ?? ["", "", ""])].join(",");

test("person-0 rows become one pose per tick; other people are skipped; fps from the first two rows", () => {
  const csv = [
    HEADER,
    row(0, 0, { nose: [0.5, 0.25, 0.9] }),
    row(0, 1, { nose: [0.1, 0.1, 0.9] }),
    row(1, 0, { neck: [0.4, 0.3, 0.8], r_shoulder: [0.35, 0.3, 0.7] }),
    row(2, 0, {}),
    "",
  ].join("\n");
  const { poses, fps } = parseKeypointsCsv(csv);
  assert.equal(fps, 10);
  assert.deepEqual([...poses.keys()], [0, 1, 2]);
  assert.deepEqual([...poses.get(0).slice(0, 3)].map((v) => Math.round(v * 1000)), [500, 250, 900]);
  assert.ok(Number.isNaN(poses.get(0)[3])); // the neck was not found at tick 0
  assert.equal(poses.get(2).filter(Number.isFinite).length, 0);
});

test("a CSV without the part columns is refused with the column's name", () => {
  assert.throws(() => parseKeypointsCsv("tick,time_s,person\n0,0,0\n"), /nose_x/);
  assert.throws(() => parseKeypointsCsv(""), /empty/);
});

test("the tick on screen is floor(t * fps), exact at t = k / fps", () => {
  assert.equal(tickAt(0, 10), 0);
  assert.equal(tickAt(0.3, 10), 3); // 0.3 * 10 = 2.9999999999999996 in floating point
  assert.equal(tickAt(0.7, 10), 7);
  assert.equal(tickAt(0.349, 10), 3);
  assert.equal(tickAt(12.6, 5), 63);
  assert.equal(tickAt(-1, 10), 0);
  for (let k = 0; k < 1000; k += 1) assert.equal(tickAt(k / 10, 10), k);
});

test("parts belong to limbs as in pose/limbs.py", () => {
  const limbs = Object.fromEntries(PARTS.map((p, i) => [p, LIMB_OF_PART[i]]));
  assert.deepEqual(limbs, {
    nose: "head", neck: "torso", r_shoulder: "right_arm", r_elbow: "right_arm", r_wrist: "right_arm",
    l_shoulder: "left_arm", l_elbow: "left_arm", l_wrist: "left_arm", r_hip: "torso", r_knee: "right_leg",
    r_ankle: "right_leg", l_hip: "torso", l_knee: "left_leg", l_ankle: "left_leg", r_eye: "head", l_eye: "head",
    r_ear: "head", l_ear: "head",
  }); // prettier-ignore
  assert.equal(EDGES.length, 17);
});

test("edges with both parts found are drawn in their limb's colour, the off limb in red", () => {
  const pose = new Float32Array(PARTS.length * 3).fill(NaN);
  const put = (name, x, y) => pose.set([x, y, 0.9], PARTS.indexOf(name) * 3);
  put("neck", 0.5, 0.25); // binary fractions: exact in a Float32Array
  put("l_shoulder", 0.625, 0.25);
  put("l_elbow", 0.75, 0.5);
  put("r_hip", 0.375, 0.75);
  const box = { x: 10, y: 0, width: 200, height: 100 };
  const { lines, joints } = skeletonShapes(pose, box, null);
  assert.deepEqual(
    lines.map((l) => [l.limb, l.colour, l.from, l.to]),
    [
      ["left_arm", LIMB_COLOURS.left_arm, [110, 25], [135, 25]],
      ["left_arm", LIMB_COLOURS.left_arm, [135, 25], [160, 50]],
      ["torso", LIMB_COLOURS.torso, [110, 25], [85, 75]],
    ],
  );
  assert.equal(joints.length, 4);
  const off = skeletonShapes(pose, box, "left_arm");
  assert.deepEqual(off.lines.map((l) => l.colour), [OFF_COLOUR, OFF_COLOUR, LIMB_COLOURS.torso]);
  assert.equal(off.joints.filter((j) => j.colour === OFF_COLOUR).length, 2);
});

test("object-fit: contain places the frame centred in its element", () => {
  assert.deepEqual(containBox(768, 576, 400, 400), { x: 0, y: 50, width: 400, height: 300 });
  assert.deepEqual(containBox(640, 480, 800, 300), { x: 200, y: 0, width: 400, height: 300 });
});

test("the crop around a pose: its box grown by the margin, at the drawing's aspect, mapped onto the drawing", async () => {
  const { cropBox, poseCrop } = await import("../../web/skeleton.js");
  const pose = new Float32Array(PARTS.length * 3).fill(NaN);
  pose.set([0.5, 0.25, 0.9], 0); // nose
  pose.set([0.5, 0.75, 0.9], PARTS.indexOf("l_ankle") * 3);
  // a 2:1 frame, drawn into a square: the parts span half the frame's height, grown by a quarter each side
  const crop = poseCrop(pose, 1, 2, 0.25);
  assert.deepEqual(crop, { x: 0.5 - 0.1875, y: 0.125, width: 0.375, height: 0.75 });
  const box = cropBox(crop, { x: 0, y: 0, width: 300, height: 300 });
  const { joints } = skeletonShapes(pose, box);
  assert.deepEqual(joints.map((j) => j.at.map((v) => Math.round(v * 1000) / 1000)), [[150, 50], [150, 250]]);
  assert.equal(poseCrop(new Float32Array(PARTS.length * 3).fill(NaN), 1, 1), null);
  assert.equal(poseCrop(pose, 1, 1, 0, 0.9).height, 0.9); // never less than `min` of the frame
});

test("a pose message's keypoints become a pose: x, y, score per part, NaN where not found", () => {
  const pose = poseOfKeypoints([[0.25, 0.5, 0.9], null, ...Array(16).fill(null)]);
  assert.equal(pose.length, 18 * 3);
  assert.deepEqual(Array.from(pose.slice(0, 3)), [0.25, 0.5, Math.fround(0.9)]);
  assert.ok(pose.slice(3).every(Number.isNaN));
  assert.ok(poseOfKeypoints(undefined).every(Number.isNaN));
});
