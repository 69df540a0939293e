/**
 * Colouring of grey channel tiles, kept apart from OpenSeadragon so it can be tested in Node:
 * a channel's lookup table (colour x window) and the additive composition of channels.
 */

/** "rrggbb" -> [r, g, b] */
export function parseColour(hex) {
  const s = String(hex || "ffffff").replace(/^#/, "");
  const v = /^[0-9a-fA-F]{6}$/.test(s) ? s : "ffffff";
  return [0, 2, 4].map((i) => parseInt(v.slice(i, i + 2), 16));
}

/**
 * Lookup table of one channel: grey value g (0..255) -> colour * clamp((g - lo) / (hi - lo)).
 * @returns {Uint8ClampedArray} 768 entries, r[0..255] g[256..511] b[512..767]
 */
export function channelLut(colour, lo, hi) {
  const rgb = parseColour(colour);
  const lut = new Uint8ClampedArray(768);
  const span = Math.max(1, hi - lo);
  for (let g = 0; g < 256; g++) {
    const f = Math.min(1, Math.max(0, (g - lo) / span));
    for (let c = 0; c < 3; c++) lut[c * 256 + g] = Math.round(rgb[c] * f);
  }
  return lut;
}

/**
 * Additive composition of grey planes into RGBA: out = min(255, sum of lut_c[plane_c]) per colour.
 * @param {Uint8Array[]} planes one grey plane per channel (null: channel not used)
 * @param {Uint8ClampedArray[]} luts one 768-entry table per channel (see channelLut)
 * @param {boolean[]} on whether each channel is shown
 * @param {Uint8ClampedArray} out RGBA, 4 bytes per pixel of the planes
 */
export function composeChannels(planes, luts, on, out) {
  const n = out.length >> 2;
  const r = new Uint16Array(n);
  const g = new Uint16Array(n);
  const b = new Uint16Array(n);
  for (let c = 0; c < planes.length; c++) {
    const plane = planes[c];
    if (!on[c] || !plane) continue;
    const lut = luts[c];
    for (let i = 0; i < n; i++) {
      const v = plane[i];
      r[i] += lut[v];
      g[i] += lut[256 + v];
      b[i] += lut[512 + v];
    }
  }
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[j] = r[i];  // Uint8ClampedArray clamps sums above 255
    out[j + 1] = g[i];
    out[j + 2] = b[i];
    out[j + 3] = 255;
  }
  return out;
}
