import { test } from "node:test";
import assert from "node:assert/strict";
import { channelLut, composeChannels, parseColour } from "../src/viewer/channel-lut.js";

test("a channel's table maps its window onto its colour and clamps outside it", () => {
  const lut = channelLut("00ff80", 50, 150);
  assert.deepEqual(parseColour("#00FF80"), [0, 255, 128]);
  assert.equal(lut[256 + 40], 0, "below the window: black");
  assert.equal(lut[256 + 100], 128, "half way: half the colour");
  assert.equal(lut[512 + 100], 64);
  assert.equal(lut[256 + 200], 255, "above the window: the full colour");
  assert.equal(lut[0 + 200], 0, "a colour without red never gets red");
  assert.deepEqual(parseColour("not a colour"), [255, 255, 255]);
});

test("channels add up per colour, saturate at 255, and a channel switched off adds nothing", () => {
  const blue = channelLut("0000ff", 0, 255);
  const green = channelLut("00ff00", 0, 255);
  const magenta = channelLut("ff00ff", 0, 255);
  const planes = [Uint8Array.of(255, 0, 200), Uint8Array.of(0, 255, 200), Uint8Array.of(0, 0, 200)];
  const out = composeChannels(planes, [blue, green, magenta], [true, true, true], new Uint8ClampedArray(12));
  assert.deepEqual([...out.slice(0, 4)], [0, 0, 255, 255]);
  assert.deepEqual([...out.slice(4, 8)], [0, 255, 0, 255]);
  assert.deepEqual([...out.slice(8, 12)], [200, 200, 255, 255], "blue 200 + magenta 200 saturates at 255");
  const off = composeChannels(planes, [blue, green, magenta], [true, false, true], new Uint8ClampedArray(12));
  assert.deepEqual([...off.slice(4, 8)], [0, 0, 0, 255], "FITC off: its pixel is black, fully opaque");
  assert.deepEqual([...off.slice(8, 12)], [200, 0, 255, 255]);
});
