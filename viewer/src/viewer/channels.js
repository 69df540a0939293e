/**
 * Fluorescence / multiplex channels: one OpenSeadragon TiledImage per channel, composed additively.
 *
 * The server stores every channel as an 8-bit grey pyramid through the window it took from the
 * channel's histogram. Here each channel's tiles are colourised once, when they arrive, through
 * a 256-entry lookup table (colour x the user's window on the 8-bit values) in OpenSeadragon 6's
 * `tile-invalidated` pipeline; the canvas drawer then composes the channels with
 * `compositeOperation: "lighter"` (additive). Panning only draws cached, already coloured tiles,
 * so it costs what a bright-field slide costs. Changing a colour or a window rebuilds the table
 * and asks OpenSeadragon to re-run the pipeline over the cached tiles (`requestInvalidate`);
 * switching a channel off sets its opacity to 0.
 */
import OpenSeadragon from "openseadragon";
import { fetchDzi, makeTileSource } from "./tilesource.js";

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

export class ChannelLayers {
  /** @param {{viewer: any}} pane the SlidePane whose viewer shows the slide */
  constructor(pane, onChange = () => {}) {
    this.pane = pane;
    this.onChange = onChange;
    this.channels = [];
    this.bySource = new WeakMap();
    this.token = 0;
    this.hooked = new WeakSet();
    this._pending = false;
  }

  _hook(viewer) {
    if (!viewer || this.hooked.has(viewer)) return;
    this.hooked.add(viewer);
    viewer.addHandler("tile-invalidated", async (e) => {
      const state = e.tiledImage && this.bySource.get(e.tiledImage.source);
      if (!state) return;
      const ctx = await e.getData("context2d");
      if (!ctx || e.outdated()) return;
      const { width, height } = ctx.canvas;
      const img = ctx.getImageData(0, 0, width, height);
      const d = img.data;
      const lut = state.lut;
      for (let i = 0; i < d.length; i += 4) {
        const g = d[i];
        d[i] = lut[g];
        d[i + 1] = lut[256 + g];
        d[i + 2] = lut[512 + g];
      }
      ctx.putImageData(img, 0, 0);
      await e.setData(ctx, "context2d");
    });
  }

  /** Remove the channel images (slide closed or another slide opened). */
  clear() {
    this.token += 1;
    const viewer = this.pane.viewer;
    for (const ch of this.channels) {
      if (viewer && ch.item && viewer.world.getIndexOfItem(ch.item) >= 0) viewer.world.removeItem(ch.item);
    }
    this.channels = [];
    if (this.pane.osdEl) this.pane.osdEl.classList.remove("ph-fluorescence");
    this.onChange(this);
  }

  /**
   * Add the slide's channels over its composite (which is hidden while channels are shown).
   * Resolves once every channel image is in the world.
   */
  async open(slide) {
    this.clear();
    const list = (slide && slide.channels) || [];
    const viewer = this.pane.viewer;
    if (!list.length || !viewer) return false;
    const token = this.token;
    this._hook(viewer);
    if (viewer.navigator) this._hook(viewer.navigator);
    let dzis;
    try {
      dzis = await Promise.all(list.map((c) => fetchDzi(c.dziUrl)));
    } catch (err) {
      return false;  // the composite stays visible
    }
    if (token !== this.token) return false;
    const states = list.map((c, i) => ({
      index: i, name: c.name, colour: c.colour, window: c.window, on: true, lo: 0, hi: 255,
      lut: channelLut(c.colour, 0, 255), item: null, source: makeTileSource({ dziUrl: c.dziUrl }, dzis[i]),
    }));
    for (const st of states) this.bySource.set(st.source, st);
    await Promise.all(states.map((st) => new Promise((resolve) => {
      viewer.addTiledImage({
        tileSource: st.source,
        compositeOperation: "lighter",
        success: (e) => { st.item = e.item; resolve(); },
        error: () => resolve(),
      });
    })));
    if (token !== this.token) {
      for (const st of states) if (st.item) viewer.world.removeItem(st.item);
      return false;
    }
    this.channels = states.filter((st) => st.item);
    const base = viewer.world.getItemAt(0);
    if (base && this.channels.length) base.setOpacity(0);
    this.pane.osdEl.classList.add("ph-fluorescence");
    this.onChange(this);
    return this.channels.length > 0;
  }

  /** Change one channel: {on, colour, lo, hi} (lo/hi on the 0..255 values of its tiles). */
  set(index, changes) {
    const st = this.channels[index];
    if (!st) return;
    if (changes.on !== undefined) {
      st.on = Boolean(changes.on);
      st.item.setOpacity(st.on ? 1 : 0);
    }
    let recolour = false;
    if (changes.colour !== undefined) { st.colour = String(changes.colour).replace(/^#/, ""); recolour = true; }
    if (changes.lo !== undefined) { st.lo = Math.max(0, Math.min(254, Number(changes.lo))); recolour = true; }
    if (changes.hi !== undefined) { st.hi = Math.max(st.lo + 1, Math.min(255, Number(changes.hi))); recolour = true; }
    if (recolour) {
      st.lut = channelLut(st.colour, st.lo, st.hi);
      this._invalidate();
    }
    this.pane.viewer.forceRedraw();
  }

  /** One re-colouring pass per animation frame however fast a slider moves. */
  _invalidate() {
    if (this._pending) return;
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this.pane.viewer.requestInvalidate(true);
    });
  }

  /** A channel's window in the file's own sample values (what the 8-bit lo/hi mean). */
  rawWindow(st) {
    const [a, b] = Array.isArray(st.window) && st.window.length === 2 ? st.window.map(Number) : [0, 255];
    const at = (v) => a + (v / 255) * (b - a);
    return [at(st.lo), at(st.hi)];
  }

  state() {
    return this.channels.map((st) => ({
      name: st.name, colour: st.colour, on: st.on, lo: st.lo, hi: st.hi, window: this.rawWindow(st),
    }));
  }
}

export { OpenSeadragon };
