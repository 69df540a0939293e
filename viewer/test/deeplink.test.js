import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDeepLink, buildDeepLink } from "../src/viewer/deeplink.js";

test("build then parse round-trips the view, magnification and adjustments, and keeps other parameters", () => {
  const href = buildDeepLink("https://h.example/cases/12/viewer?t=abc&z=2", {
    slideId: 5, x: 0.512345678, y: 0.42, zoom: 3.14159, magnification: 10.000123, rotation: 90,
    adjustments: { brightness: 10, contrast: 0, gamma: 1.25 }, compareSlideId: 6,
  });
  const url = new URL(href);
  assert.equal(url.searchParams.get("t"), "abc");
  assert.equal(url.searchParams.has("z"), false, "the window-relative zoom is never written");
  assert.equal(url.searchParams.has("c"), false, "neutral adjustments are left out");
  const state = parseDeepLink(url.search);
  assert.deepEqual(state, {
    slideId: 5, x: 0.51235, y: 0.42, magnification: 10, pixelRatio: undefined, zoom: undefined, rotation: 90,
    adjustments: { brightness: 10, contrast: 0, gamma: 1.25 }, compareSlideId: 6,
  });
});

test("slides without a magnification store image pixels per screen pixel", () => {
  const href = buildDeepLink("https://h.example/v", { slideId: 5, x: 0.5, y: 0.5, magnification: null,
                                                     pixelRatio: 0.25, rotation: 0 });
  const state = parseDeepLink(new URL(href).search);
  assert.equal(state.pixelRatio, 0.25);
  assert.equal(state.magnification, undefined);
  assert.equal(state.adjustments, undefined);
});

test("old links with z still parse", () => {
  const state = parseDeepLink("?slide=5&x=0.5&y=0.4&z=3.1&r=90");
  assert.equal(state.zoom, 3.1);
  assert.equal(state.magnification, undefined);
  assert.equal(state.rotation, 90);
});

test("compare is dropped when closed; junk values are ignored", () => {
  const href = buildDeepLink("https://h.example/v?compare=6", { slideId: 5, x: 0.5, y: 0.5, magnification: 1, rotation: 0, compareSlideId: null });
  assert.equal(new URL(href).searchParams.has("compare"), false);
  const state = parseDeepLink("?slide=abc&x=0.3&z=&m=-2");
  assert.equal(state.slideId, undefined);
  assert.equal(state.x, 0.3);
  assert.equal(state.zoom, undefined);
  assert.equal(state.magnification, undefined);
  assert.equal(state.compareSlideId, undefined);
});
