import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, formatDuration, RateMeter } from "../src/upload/format.js";
import { makeTranslator } from "../src/dom.js";
import { UPLOAD_STRINGS } from "../src/upload/strings.js";

const t = makeTranslator({}, UPLOAD_STRINGS);

test("sizes and durations", () => {
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(5_240_000), "5.24 MB");
  assert.equal(formatDuration(42, t), "42 s");
  assert.equal(formatDuration(125, t), "2 min 5 s");
  assert.equal(formatDuration(7300, t), "2 h 1 min");
});

test("rate meter smooths instead of jumping to each sample", () => {
  const meter = new RateMeter(0.5, 0);
  meter.sample(0, 0);
  assert.equal(meter.sample(10_000_000, 1000), 10_000_000);
  // a burst of 30 MB/s moves the estimate halfway, not all the way
  assert.equal(meter.sample(40_000_000, 2000), 20_000_000);
});

test("translations override fallbacks and fill placeholders", () => {
  const zh = makeTranslator({ verifying: "校验中… {percent}%" }, UPLOAD_STRINGS);
  assert.equal(zh("verifying", { percent: 12 }), "校验中… 12%");
  assert.equal(zh("pause"), "Pause");
});
