import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDeepLink, buildDeepLink } from "../src/viewer/deeplink.js";

test("build then parse round-trips the view and keeps other parameters", () => {
  const href = buildDeepLink("https://h.example/cases/12/viewer?t=abc", {
    slideId: 5, x: 0.512345678, y: 0.42, zoom: 3.14159, rotation: 90, compareSlideId: 6,
  });
  const url = new URL(href);
  assert.equal(url.searchParams.get("t"), "abc");
  const state = parseDeepLink(url.search);
  assert.deepEqual(state, { slideId: 5, x: 0.51235, y: 0.42, zoom: 3.142, rotation: 90, compareSlideId: 6 });
});

test("compare is dropped when closed; junk values are ignored", () => {
  const href = buildDeepLink("https://h.example/v?compare=6", { slideId: 5, x: 0.5, y: 0.5, zoom: 1, rotation: 0, compareSlideId: null });
  assert.equal(new URL(href).searchParams.has("compare"), false);
  const state = parseDeepLink("?slide=abc&x=0.3&z=");
  assert.equal(state.slideId, undefined);
  assert.equal(state.x, 0.3);
  assert.equal(state.zoom, undefined);
  assert.equal(state.compareSlideId, undefined);
});
