/**
 * Fluorescence / multiplex channels, composed into one coloured OpenSeadragon layer.
 *
 * The server stores every channel as an 8-bit grey pyramid through the window it took from the
 * channel's histogram (all channels share one geometry). One TiledImage shows them all: its tile
 * source fetches a position's tile of every channel, keeps the grey planes (a byte-bounded LRU),
 * and composes them additively through each channel's 256-entry lookup table (colour x the user's
 * window) into one RGB tile. Panning then draws one opaque layer, as a bright-field slide does:
 * one additive layer per channel ("lighter" through OpenSeadragon's sketch canvas) drew 20 frames/s
 * with three channels in headless Chromium here, one composed layer 58. Changing a colour, a window
 * or a channel's visibility bumps a version and asks OpenSeadragon to re-run its tile pipeline
 * (`requestInvalidate`); `tile-invalidated` recomposes each cached tile from its grey planes,
 * fetching them again if the LRU let them go.
 */
import OpenSeadragon from "openseadragon";
import { fetchDzi, makeTileSource } from "./tilesource.js";
import { channelLut, composeChannels } from "./channel-lut.js";

export { channelLut, composeChannels, parseColour } from "./channel-lut.js";

/** Grey planes kept for recolouring; beyond this the least recently used are refetched when needed. */
const RAW_BUDGET_BYTES = 160 * 1024 * 1024;

export class ChannelLayers {
  /** @param {{viewer: any, osdEl?: HTMLElement}} pane the SlidePane whose viewer shows the slide */
  constructor(pane, onChange = () => {}) {
    this.pane = pane;
    this.onChange = onChange;
    this.channels = [];
    this.item = null;
    this.source = null;
    this.sources = [];
    this.token = 0;
    this.version = 0;
    this.hooked = new WeakSet();
    this.raw = new Map();
    this.rawBytes = 0;
    this.composed = new WeakMap();  // canvas -> version it was composed at
    this._pending = false;
  }

  _hook(viewer) {
    if (!viewer || this.hooked.has(viewer)) return;
    this.hooked.add(viewer);
    viewer.addHandler("tile-invalidated", async (e) => {
      if (!this.source || !e.tiledImage || e.tiledImage.source !== this.source) return;
      const current = await e.getData("context2d");
      if (current && this.composed.get(current.canvas) === this.version) return;  // composed at load
      const tile = e.tile;
      let raw;
      try {
        raw = await this._rawTile(tile.level, tile.x, tile.y);
      } catch (err) {
        return;  // keeps what it shows; the next change or load retries
      }
      if (e.outdated()) return;
      await e.setData(this._compose(raw), "context2d");
    });
  }

  /** The grey planes of one tile position, from the LRU or fetched (one request per channel). */
  async _rawTile(level, x, y, signal) {
    const key = `${level}/${x}/${y}`;
    const hit = this.raw.get(key);
    if (hit) {
      this.raw.delete(key);
      this.raw.set(key, hit);
      return hit;
    }
    const token = this.token;
    const tiles = await Promise.all(this.sources.map((src) => greyTile(src.getTileUrl(level, x, y), signal)));
    const { width, height } = tiles[0];
    if (tiles.some((t) => t.width !== width || t.height !== height)) throw new Error("channel tiles differ in size");
    const raw = { width, height, planes: tiles.map((t) => t.plane), bytes: width * height * tiles.length };
    if (token === this.token) {
      this.raw.set(key, raw);
      this.rawBytes += raw.bytes;
      for (const [k, v] of this.raw) {
        if (this.rawBytes <= RAW_BUDGET_BYTES) break;
        this.raw.delete(k);
        this.rawBytes -= v.bytes;
      }
    }
    return raw;
  }

  _compose(raw) {
    const canvas = document.createElement("canvas");
    canvas.width = raw.width;
    canvas.height = raw.height;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(raw.width, raw.height);
    composeChannels(raw.planes, this.channels.map((st) => st.lut), this.channels.map((st) => st.on), img.data);
    ctx.putImageData(img, 0, 0);
    this.composed.set(canvas, this.version);
    return ctx;
  }

  /** The tile source of the composed layer: the channels' geometry, tiles composed on the client. */
  _composedSource(dzi, first) {
    const source = makeTileSource({ dziUrl: first.dziUrl }, dzi);
    source.downloadTileStart = (job) => {
      const ctrl = new AbortController();
      job.userData.channels = ctrl;
      const { level, x, y } = job.tile;
      this._rawTile(level, x, y, ctrl.signal)
        .then((raw) => { if (!ctrl.signal.aborted) job.finish(this._compose(raw), null, "context2d"); })
        .catch((err) => { if (!ctrl.signal.aborted) job.fail(`[channels] ${err && err.message}`, null); });
    };
    source.downloadTileAbort = (job) => {
      if (job.userData.channels) job.userData.channels.abort();
    };
    return source;
  }

  /** Remove the channel layer (slide closed or another slide opened). */
  clear() {
    this.token += 1;
    const viewer = this.pane.viewer;
    if (viewer && this.item && viewer.world.getIndexOfItem(this.item) >= 0) viewer.world.removeItem(this.item);
    const base = viewer && viewer.world.getItemAt(0);
    if (base && this.item) base.setOpacity(1);
    this.item = null;
    this.source = null;
    this.sources = [];
    this.channels = [];
    this.raw.clear();
    this.rawBytes = 0;
    if (this.pane.osdEl) this.pane.osdEl.classList.remove("ph-fluorescence");
    this.onChange(this);
  }

  /**
   * Show the slide's channels, composed, over its composite (which is hidden while they are shown).
   * Resolves once the channel layer is in the world; false (composite stays) if it cannot be.
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
    const d0 = dzis[0];
    if (dzis.some((d) => d.width !== d0.width || d.height !== d0.height || d.tileSize !== d0.tileSize
                     || d.overlap !== d0.overlap)) {
      return false;  // channels that do not share one geometry cannot be composed tile by tile
    }
    this.channels = list.map((c, i) => ({
      index: i, name: c.name, colour: c.colour, window: c.window, on: true, lo: 0, hi: 255,
      lut: channelLut(c.colour, 0, 255),
    }));
    this.sources = list.map((c, i) => makeTileSource({ dziUrl: c.dziUrl }, dzis[i]));
    const source = this._composedSource(d0, list[0]);
    this.source = source;
    const item = await new Promise((resolve) => {
      viewer.addTiledImage({
        tileSource: source,
        success: (e) => resolve(e.item),
        error: () => resolve(null),
      });
    });
    if (token !== this.token || !item) {
      if (item) viewer.world.removeItem(item);
      if (token === this.token) this.clear();
      return false;
    }
    this.item = item;
    const base = viewer.world.getItemAt(0);
    if (base && base !== item) base.setOpacity(0);
    this.pane.osdEl.classList.add("ph-fluorescence");
    this.onChange(this);
    return true;
  }

  /** Change one channel: {on, colour, lo, hi} (lo/hi on the 0..255 values of its tiles). */
  set(index, changes) {
    const st = this.channels[index];
    if (!st) return;
    if (changes.on !== undefined) st.on = Boolean(changes.on);
    if (changes.colour !== undefined) st.colour = String(changes.colour).replace(/^#/, "");
    if (changes.lo !== undefined) st.lo = Math.max(0, Math.min(254, Number(changes.lo)));
    if (changes.hi !== undefined) st.hi = Math.max(st.lo + 1, Math.min(255, Number(changes.hi)));
    st.lut = channelLut(st.colour, st.lo, st.hi);
    this.version += 1;
    this._invalidate();
  }

  /** One recomposition pass per animation frame however fast a slider moves. */
  _invalidate() {
    if (this._pending) return;
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      if (this.pane.viewer) this.pane.viewer.requestInvalidate(true);
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

/** One channel tile as a grey plane: its first sample (the server stores one-component JPEG, which decodes to equal R, G, B). */
async function greyTile(url, signal) {
  const response = await fetch(url, { credentials: "same-origin", signal });
  if (!response.ok) throw new Error(`tile request failed (${response.status})`);
  const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none" });
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const plane = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0, j = 0; i < plane.length; i++, j += 4) plane[i] = rgba[j];
  return { width: canvas.width, height: canvas.height, plane };
}

export { OpenSeadragon };
