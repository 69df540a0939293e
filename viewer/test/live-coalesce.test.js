import { test } from "node:test";
import assert from "node:assert/strict";
import { Coalescer, compactView, sameView } from "../src/live/coalesce.js";

function clock() {
  const c = { t: 0, timers: [] };
  c.now = () => c.t;
  c.setTimer = (fn, ms) => { const id = { fn, at: c.t + ms }; c.timers.push(id); return id; };
  c.clearTimer = (id) => { c.timers = c.timers.filter((x) => x !== id); };
  c.advance = (ms) => {
    c.t += ms;
    for (const timer of c.timers.filter((x) => x.at <= c.t)) { c.clearTimer(timer); timer.fn(); }
  };
  return c;
}

test("panning at 60 frames/s sends at most one message per interval, and the last view last", () => {
  const c = clock();
  const sent = [];
  const co = new Coalescer((v) => sent.push(v), { interval: 120, now: c.now, setTimer: c.setTimer, clearTimer: c.clearTimer });
  for (let i = 0; i < 60; i += 1) { co.push({ x: i / 100, y: 0.5 }); c.advance(1000 / 60); }
  c.advance(500);
  assert.ok(sent.length <= Math.ceil(1000 / 120) + 1, `sent ${sent.length}`);
  assert.ok(sent.length >= 8);
  assert.deepEqual(sent.at(-1), { x: 0.59, y: 0.5 });
});

test("an unchanged view is not sent again, until reset", () => {
  const c = clock();
  const sent = [];
  const co = new Coalescer((v) => sent.push(v), { interval: 100, now: c.now, setTimer: c.setTimer, clearTimer: c.clearTimer });
  co.push({ x: 0.1, y: 0.2 });
  c.advance(200);
  co.push({ x: 0.1, y: 0.2 });
  c.advance(200);
  assert.equal(sent.length, 1);
  co.reset();
  co.push({ x: 0.1, y: 0.2 });
  assert.equal(sent.length, 2);
});

test("compactView rounds and drops what is not a finite number", () => {
  const v = compactView({ slideId: 3, x: 0.123456789, y: 0.5, magnification: 12.3456789, zoom: null, gamma: NaN });
  assert.deepEqual(v, { slideId: 3, x: 0.1234568, y: 0.5, magnification: 12.346 });
  assert.ok(JSON.stringify({ type: "view", view: v }).length < 150);
  assert.ok(sameView({ x: 0.5, rotation: 10 }, { x: 0.5000001, rotation: 10.05 }));
  assert.ok(!sameView({ x: 0.5 }, { x: 0.51 }));
});
