import { test } from "node:test";
import assert from "node:assert/strict";
import {
  nativeMagnification, magnificationPresets, formatMagnification, scaleBarFor, normalizeAngle,
} from "../src/viewer/measure.js";

test("magnification is objective-equivalent from mpp (40x = 0.25 um/px); objective power only without mpp", () => {
  assert.equal(nativeMagnification({ objectivePower: 20, mpp: 0.25 }), 40);
  assert.equal(nativeMagnification({ objectivePower: 20, mpp: null }), 20);
  assert.equal(nativeMagnification({ objectivePower: null, mpp: 0.5 }), 20);
  assert.equal(nativeMagnification({ objectivePower: null, mpp: null }), null);
});

test("presets are capped at the native magnification", () => {
  assert.deepEqual(magnificationPresets(20), [1, 2, 5, 10, 20]);
  assert.deepEqual(magnificationPresets(40), [1, 2, 5, 10, 20, 40]);
  assert.deepEqual(magnificationPresets(null), []);
});

test("magnification formatting", () => {
  assert.equal(formatMagnification(2.5), "2.5×");
  assert.equal(formatMagnification(2.0), "2×");
  assert.equal(formatMagnification(19.97), "20×");
});

test("scale bar picks a round length that fits", () => {
  // 0.5 um per screen px, 140 px max -> 70 um available -> 50 um bar of 100 px
  assert.deepEqual(scaleBarFor(0.5, 140), { px: 100, label: "50 µm" });
  const mm = scaleBarFor(20, 140); // 2800 um available -> 2 mm
  assert.equal(mm.label, "2 mm");
  assert.equal(scaleBarFor(0), null);
});

test("angles normalise to (-180, 180]", () => {
  assert.equal(normalizeAngle(270), -90);
  assert.equal(normalizeAngle(-450), -90);
  assert.equal(normalizeAngle(180), 180);
});
