/**
 * One slide viewport: an OpenSeadragon viewer plus its scale bar, label and
 * tile-health tracking. The side-by-side view is simply two panes.
 */
import OpenSeadragon from "openseadragon";
import { h } from "../dom.js";
import { fetchDzi, makeTileSource, isTransientStatus } from "./tilesource.js";
import { formatMagnification, nativeMagnification, scaleBarFor } from "./measure.js";

/** How long to wait before reviving a tile OSD gave up on (storage down, still tiling). */
const REVIVE_DELAY_MS = 4000;

/**
 * OSD injects a <style data-openseadragon-mobile-css> element unless one exists;
 * the CSP (style-src 'self') blocks and reports it. An empty marker element
 * satisfies OSD's check; the same rule lives in viewer.css instead.
 */
function preemptInlineStyle() {
  if (document.querySelector("style[data-openseadragon-mobile-css]")) return;
  // Not an HTML <style> (that would be checked against the CSP even when empty): an
  // inert element in a private namespace that still matches OSD's selector.
  const marker = document.createElementNS("urn:pathology-hub:marker", "style");
  marker.setAttribute("data-openseadragon-mobile-css", "true");
  document.head.append(marker);
}

/**
 * OSD marks a tile as non-existent once its retries are spent and never asks for
 * it again. For transient failures (storage down, tile not rendered yet) we
 * revive such tiles in batches so they are requested again once the server is back.
 */
class TileReviver {
  constructor(osdViewer) {
    this.viewer = osdViewer;
    this.dead = new Set();
    this.timer = null;
    this.replanTimer = null;
    this.sawFailure = false;
    osdViewer.addHandler("tile-load-failed", (event) => {
      this.sawFailure = true;
      const status = event.tileRequest ? event.tileRequest.status : 0;
      if (event.maxReached && isTransientStatus(status)) this.add(event.tile);
    });
    // After failures OSD may consider the image "fully loaded" (failed tiles count as
    // absent) and stop re-planning, so tiles that a retry then loads are never drawn.
    osdViewer.addHandler("tile-loaded", () => {
      if (this.sawFailure && this.replanTimer === null) {
        this.replanTimer = setTimeout(() => {
          this.replanTimer = null;
          this.sawFailure = false;
          this.replan();
        }, 200);
      }
    });
  }

  replan() {
    const count = this.viewer.world.getItemCount();
    for (let i = 0; i < count; i++) {
      const item = this.viewer.world.getItemAt(i);
      // Re-setting the same clip is the public way to make OSD re-plan which tiles to draw/load.
      item.setClip(item.getClip());
    }
    this.viewer.forceRedraw();
  }

  add(tile) {
    if (!tile) return;
    this.dead.add(tile);
    if (this.timer === null) this.timer = setTimeout(() => this.revive(), REVIVE_DELAY_MS);
  }

  revive() {
    this.timer = null;
    for (const tile of this.dead) if (!tile.loaded) tile.exists = true;
    this.dead.clear();
    this.replan();
  }
}

/** How often a preview-only slide asks whether its full pyramid is ready (ms); a page may lower it
 * with window.PH_PREVIEW_POLL_MS (the browser test does). */
const previewPollMs = () => (typeof window !== "undefined" && Number(window.PH_PREVIEW_POLL_MS)) || 10000;

export class SlidePane {
  /**
   * @param {object} opts
   * @param {string} opts.prefixUrl
   * @param {(key:string, p?:object)=>string} opts.t
   * @param {string} opts.role "primary" | "compare"
   * @param {(pane: SlidePane) => void} opts.onViewChange
   * @param {(pane: SlidePane) => void} opts.onHealthChange
   * @param {(pane: SlidePane) => void} opts.onActivate
   * @param {(canvas: HTMLCanvasElement) => void} opts.onCanvas
   */
  constructor(opts) {
    this.opts = opts;
    this.t = opts.t;
    this.slide = null;
    this.viewer = null;
    this.openToken = 0;
    this.health = this._freshHealth();
    this.scaleLabel = h("span", { class: "ph-scalebar-label" });
    this.scaleBar = h("div", { class: "ph-scalebar-bar" });
    this.scaleEl = h(
      "div",
      { class: "ph-scalebar", role: "img", "aria-label": this.t("scaleBar"), hidden: true },
      this.scaleBar,
      this.scaleLabel,
    );
    this.nameEl = h("span", { class: "ph-pane-name" });
    this.magEl = h("span", { class: "ph-pane-mag" });
    this.badgeEl = h("span", { class: "ph-badge", hidden: true }, this.t("tiling"));
    // Only the uploader's coarse levels so far (#21): said plainly, with how far one can zoom.
    this.previewEl = h("span", { class: "ph-badge ph-badge-preview", "data-role": "preview", hidden: true });
    this.labelEl = h("div", { class: "ph-pane-label" }, this.nameEl, this.badgeEl, this.previewEl, this.magEl);
    this.osdEl = h("div", { class: "ph-osd", "data-role": opts.role });
    this.errorEl = h("div", { class: "ph-pane-error", role: "alert", hidden: true });
    this.el = h(
      "section",
      { class: `ph-pane ph-pane-${opts.role}`, "data-role": opts.role },
      this.osdEl,
      this.labelEl,
      this.scaleEl,
      this.errorEl,
    );
    // Whichever pane the user touches leads synchronisation and receives toolbar commands.
    for (const type of ["pointerdown", "wheel", "keydown", "touchstart", "focusin"]) {
      this.el.addEventListener(type, () => opts.onActivate(this), { capture: true, passive: true });
    }
  }

  _freshHealth() {
    return {
      opened: false,
      tilesLoaded: 0,
      tilesFailed: 0,
      lastFailureStatus: null,
      storageUnavailable: false,
      fullyLoaded: false,
      drawCount: 0,
      error: null,
    };
  }

  /** Create the OSD viewer lazily: it needs a laid-out container. */
  ensureViewer() {
    if (this.viewer) return this.viewer;
    preemptInlineStyle();
    const viewer = OpenSeadragon({
      element: this.osdEl,
      prefixUrl: this.opts.prefixUrl,
      // Canvas drawer: predictable pixels (readable for tests) and CSS filters apply cleanly.
      drawer: "canvas",
      showNavigator: true,
      navigatorPosition: "BOTTOM_RIGHT",
      navigatorAutoFade: false,
      // Fixed size: a ratio is taken once at creation, so panes opened at different
      // widths (single vs side by side) would get different navigators.
      navigatorWidth: "150px",
      navigatorHeight: "150px",
      showNavigationControl: false,
      showRotationControl: false,
      loadTilesWithAjax: true,
      tileRetryMax: 3,
      tileRetryDelay: 1500,
      maxZoomPixelRatio: 2,
      minZoomImageRatio: 0.6,
      visibilityRatio: 0.3,
      animationTime: 0.5,
      blendTime: 0.1,
      zoomPerScroll: 1.4,
      preserveImageSizeOnResize: true,
      rotationIncrement: 90,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      gestureSettingsTouch: { pinchRotate: true, flickEnabled: true },
      gestureSettingsPen: { clickToZoom: false },
    });
    this.viewer = viewer;
    viewer.addHandler("viewport-change", () => {
      this._updateReadouts();
      this.opts.onViewChange(this);
    });
    viewer.addHandler("resize", () => { this._updateReadouts(); this._fitNavigator(); });
    viewer.addHandler("update-viewport", () => {
      this.health.drawCount += 1;
    });
    viewer.addHandler("tile-loaded", () => {
      this.health.tilesLoaded += 1;
      if (this.health.storageUnavailable) {
        this.health.storageUnavailable = false;
        this.opts.onHealthChange(this);
      }
    });
    viewer.addHandler("tile-load-failed", (event) => this._onTileFailed(event));
    this.reviver = new TileReviver(viewer);
    if (viewer.navigator) this.navReviver = new TileReviver(viewer.navigator);
    this._fitNavigator();
    viewer.world.addHandler("add-item", (event) => {
      event.item.addHandler("fully-loaded-change", (e) => {
        this.health.fullyLoaded = e.fullyLoaded;
      });
    });
    if (viewer.drawer && viewer.drawer.canvas) this.opts.onCanvas(viewer.drawer.canvas);
    return viewer;
  }

  _onTileFailed(event) {
    const status = event.tileRequest ? event.tileRequest.status : 0;
    this.health.tilesFailed += 1;
    this.health.lastFailureStatus = status;
    if (status === 503 || status === 0 || status === 502 || status === 504) {
      if (!this.health.storageUnavailable) {
        this.health.storageUnavailable = true;
        this.opts.onHealthChange(this);
      }
    }
  }

  /**
   * Open a slide; resolves once OSD has the image (view can then be set).
   * @param {object} slide entry from config.slides
   */
  async open(slide) {
    const token = ++this.openToken;
    this.slide = slide;
    this.health = this._freshHealth();
    this.nameEl.textContent = slide.name || "";
    this.badgeEl.hidden = slide.status !== "tiling";
    this.badgeEl.title = this.t("slideTiling");
    this._showPreview(slide);
    this.errorEl.hidden = true;
    const viewer = this.ensureViewer();
    let dzi;
    try {
      dzi = await fetchDzi(slide.dziUrl, {
        onTransient: (status) => {
          if (status === 503 || status === 0) {
            this.health.storageUnavailable = true;
            this.opts.onHealthChange(this);
          }
        },
        onRecovered: () => {
          this.health.storageUnavailable = false;
          this.opts.onHealthChange(this);
        },
      });
    } catch (err) {
      if (token !== this.openToken) return false;
      this._showError(err);
      return false;
    }
    if (token !== this.openToken) return false;
    const source = makeTileSource(slide, dzi);
    this.dzi = dzi;
    await new Promise((resolve) => {
      const onOpen = () => {
        viewer.removeHandler("open-failed", onFail);
        resolve(true);
      };
      const onFail = (e) => {
        viewer.removeHandler("open", onOpen);
        this._showError(new Error(e.message || "open failed"));
        resolve(false);
      };
      viewer.addOnceHandler("open", onOpen);
      viewer.addOnceHandler("open-failed", onFail);
      viewer.open(source);
    });
    if (token !== this.openToken) return false;
    // A preview stops at its finest level: one screen pixel per preview pixel at most.
    viewer.viewport.maxZoomPixelRatio = slide.previewFraction > 0 ? slide.previewFraction : 2;
    viewer.viewport.applyConstraints(true);
    this.health.opened = true;
    this._updateReadouts();
    this._watchPreview(slide, token);
    if (this.opts.onOpened) this.opts.onOpened(this, slide);
    return true;
  }

  /**
   * A preview-only slide becomes the full slide once its original has been tiled: ask the slide
   * API every few seconds (previewPollMs) and, when it no longer reports a preview, reopen the full pyramid
   * in place (same centre and zoom), so nobody keeps reading the coarse preview by mistake.
   */
  _watchPreview(slide, token) {
    clearTimeout(this.previewTimer);
    if (slide.previewLevel == null || !slide.apiUrl) return;
    const check = async () => {
      if (token !== this.openToken) return;
      let detail = null;
      try {
        const resp = await fetch(slide.apiUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (resp.ok) detail = await resp.json();
      } catch (err) {
        detail = null;  // offline for a moment: ask again later
      }
      if (token !== this.openToken) return;
      if (detail && !detail.preview && detail.status === "ready" && detail.dzi_url) {
        const vp = this.viewer.viewport;
        const center = vp.getCenter(true);
        const zoom = vp.getZoom(true);
        Object.assign(slide, { dziUrl: detail.dzi_url, previewLevel: null, previewFraction: null, status: "ready" });
        if (await this.open(slide)) {
          this.viewer.viewport.zoomTo(zoom, null, true);
          this.viewer.viewport.panTo(center, true);
        }
        return;
      }
      this.previewTimer = setTimeout(check, previewPollMs());
    };
    this.previewTimer = setTimeout(check, previewPollMs());
  }

  /** The preview badge: what the slide is, and the magnifications available so far. */
  _showPreview(slide) {
    const fraction = slide.previewFraction > 0 ? slide.previewFraction : null;
    this.previewEl.hidden = slide.previewLevel == null;
    if (this.previewEl.hidden) return;
    let upTo = fraction ? `1/${Math.round(1 / fraction)}` : "";
    if (fraction && slide.objectivePower > 0) upTo = formatMagnification(slide.objectivePower * fraction);
    this.previewEl.textContent = `${this.t("previewBadge")}${upTo ? ` · ${this.t("previewUpTo")} ${upTo}` : ""}`;
    this.previewEl.title = this.t("previewExplain");
  }

  _showError(err) {
    this.health.error = String(err && err.message ? err.message : err);
    this.errorEl.textContent = this.t("loadFailed");
    this.errorEl.hidden = false;
  }

  close() {
    clearTimeout(this.previewTimer);
    this.openToken += 1;
    this.slide = null;
    if (this.viewer) this.viewer.close();
    if (this.opts.onClosed) this.opts.onClosed(this);
  }

  get item() {
    return this.viewer && this.viewer.world.getItemCount() > 0
      ? this.viewer.world.getItemAt(0)
      : null;
  }

  get imageSize() {
    const item = this.item;
    if (!item) return null;
    const size = item.getContentSize();
    return { width: size.x, height: size.y };
  }

  /** Screen (CSS) pixels per image pixel. */
  imageZoom(current = true) {
    const item = this.item;
    if (!item) return null;
    return item.viewportToImageZoom(this.viewer.viewport.getZoom(current));
  }

  nativeMagnification() {
    return nativeMagnification(this.slide);
  }

  magnification(current = true) {
    const native = this.nativeMagnification();
    const zoom = this.imageZoom(current);
    return native && zoom ? native * zoom : null;
  }

  setMagnification(mag, immediately = false) {
    const native = this.nativeMagnification();
    const item = this.item;
    if (!native || !item) return;
    const viewportZoom = item.imageToViewportZoom(mag / native);
    this.viewer.viewport.zoomTo(viewportZoom, null, immediately);
    this.viewer.viewport.applyConstraints();
  }

  /**
   * The view as stored in deep links: centre normalised to image width/height, rotation in
   * degrees, and the scale in window-independent terms: `magnification` (as the read-out
   * shows it; null without MPP/objective power) and `pixelRatio` (image pixels per screen
   * pixel). `zoom` (OSD viewport zoom, 1 = image width fills the pane) depends on the pane's
   * width; it is kept for figure capture, which sends the pane size with it.
   */
  getView(current = false) {
    const item = this.item;
    if (!item) return null;
    const vp = this.viewer.viewport;
    const centre = item.viewportToImageCoordinates(vp.getCenter(current));
    const size = this.imageSize;
    const imageZoom = this.imageZoom(current);
    return {
      x: centre.x / size.width,
      y: centre.y / size.height,
      zoom: vp.getZoom(current),
      magnification: this.magnification(current),
      pixelRatio: imageZoom ? 1 / imageZoom : null,
      rotation: vp.getRotation(current),
    };
  }

  /** OSD viewport zoom for a view: magnification first, then pixel ratio, then an old link's zoom. */
  _viewportZoomOf(view) {
    const item = this.item;
    const native = this.nativeMagnification();
    if (Number.isFinite(view.magnification) && view.magnification > 0 && native) {
      return item.imageToViewportZoom(view.magnification / native);
    }
    if (Number.isFinite(view.pixelRatio) && view.pixelRatio > 0) return item.imageToViewportZoom(1 / view.pixelRatio);
    if (Number.isFinite(view.zoom) && view.zoom > 0) return view.zoom;
    return null;
  }

  setView(view, immediately = true) {
    const item = this.item;
    if (!item || !view) return;
    const vp = this.viewer.viewport;
    const size = this.imageSize;
    if (Number.isFinite(view.rotation)) vp.setRotation(view.rotation, immediately);
    const target = this._viewportZoomOf(view);
    if (target !== null) {
      // A small slide in a wide window: the usual zoom-out limit (a fraction of the fitted view)
      // would turn a 10× link into 14×, so let the view go as far out as the link asks
      // (down to 1/20 of the fitted view, which no sane link needs).
      if (target < vp.getMinZoom() && vp.getHomeZoom() > 0) {
        vp.minZoomImageRatio = Math.max(target / vp.getHomeZoom(), 0.05) * 0.999;
      }
      // Clamp only the zoom (a hand-edited link may ask for 1000×); full applyConstraints
      // would also nudge the centre and break exact deep-link round trips.
      const zoom = Math.min(Math.max(target, vp.getMinZoom()), vp.getMaxZoom());
      vp.zoomTo(zoom, null, immediately);
    }
    if (Number.isFinite(view.x) && Number.isFinite(view.y)) {
      vp.panTo(item.imageToViewportCoordinates(view.x * size.width, view.y * size.height), immediately);
    }
  }

  /** View for synchronisation: same relative position, same physical scale when both mpp are known. */
  getSyncView() {
    const view = this.getView(true);
    if (!view) return null;
    const zoom = this.imageZoom(true);
    const mpp = this.slide && this.slide.mpp > 0 ? this.slide.mpp : null;
    return { ...view, imageZoom: zoom, micronsPerScreenPx: mpp ? mpp / zoom : null };
  }

  applySyncView(sync) {
    const item = this.item;
    if (!item || !sync) return;
    const mpp = this.slide && this.slide.mpp > 0 ? this.slide.mpp : null;
    const imageZoom =
      sync.micronsPerScreenPx && mpp ? mpp / sync.micronsPerScreenPx : sync.imageZoom;
    const vp = this.viewer.viewport;
    const size = this.imageSize;
    vp.setRotation(sync.rotation, true);
    vp.zoomTo(item.imageToViewportZoom(imageZoom), null, true);
    vp.panTo(item.imageToViewportCoordinates(sync.x * size.width, sync.y * size.height), true);
  }

  /**
   * The overview map takes a fixed share of a wide pane but would cover much of a narrow one
   * (side by side with the report panel open, each pane is ~300-350 px): smaller there, and
   * hidden below 240 px.
   */
  _fitNavigator() {
    const nav = this.viewer && this.viewer.navigator;
    if (!nav) return;
    const width = this.el.clientWidth;
    const size = width < 240 ? 0 : width < 480 ? 80 : width < 700 ? 110 : 150;
    if (size === this._navSize) return;
    this._navSize = size;
    nav.setVisible(size > 0);
    if (size > 0) {
      nav.setWidth(size);
      nav.setHeight(size);
    }
  }

  _updateReadouts() {
    const mag = this.magnification(true);
    this.magEl.textContent = mag ? formatMagnification(mag) : "";
    const zoom = this.imageZoom(true);
    const mpp = this.slide && this.slide.mpp > 0 ? this.slide.mpp : null;
    const bar = mpp && zoom ? scaleBarFor(mpp / zoom) : null;
    this.scaleEl.hidden = !bar;
    if (bar) {
      this.scaleBar.style.width = `${bar.px.toFixed(1)}px`;
      this.scaleLabel.textContent = bar.label;
    }
  }

  /**
   * Count drawn pixels that are not background, on a sampling grid, so tests
   * (and diagnostics) can tell a rendered slide from an empty canvas.
   */
  canvasStats() {
    const canvas = this.viewer && this.viewer.drawer && this.viewer.drawer.canvas;
    if (!canvas || !canvas.width || !canvas.height) return { width: 0, height: 0, sampled: 0, drawn: 0 };
    const ctx = canvas.getContext("2d");
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let sampled = 0;
    let drawn = 0;
    const step = 4 * 7;
    for (let i = 0; i < data.length; i += step) {
      sampled += 1;
      if (data[i + 3] > 0) drawn += 1;
    }
    return { width: canvas.width, height: canvas.height, sampled, drawn };
  }
}
