/**
 * Slide viewer page entry point.
 *
 * Reads #viewer-config (JSON data block), renders toolbar + panes + side panel
 * into #viewer-app, and exposes window.pathologyViewer for tests.
 */
import "./viewer.css";
import { h, readJsonConfig, makeTranslator, debounce } from "./dom.js";
import { icon } from "./icons.js";
import { VIEWER_STRINGS } from "./viewer/strings.js";
import { ANNOTATION_STRINGS } from "./annotations/strings.js";
import { AnnotationController } from "./annotations/controller.js";
import { SlidePane } from "./viewer/pane.js";
import { Adjustments } from "./viewer/adjustments.js";
import { ChannelLayers } from "./viewer/channels.js";
import { parseDeepLink, buildDeepLink } from "./viewer/deeplink.js";
import { LIVE_STRINGS } from "./live/strings.js";
import { LiveSessionPanel } from "./live/session.js";

/** View keys a deep link or setState() may carry; scale: magnification > pixelRatio > zoom (old links). */
const VIEW_KEYS = ["x", "y", "magnification", "pixelRatio", "zoom", "rotation"];
import {
  formatMagnification,
  magnificationPresets,
  normalizeAngle,
} from "./viewer/measure.js";

class ViewerApp {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.t = makeTranslator(config.i18n, { ...VIEWER_STRINGS, ...ANNOTATION_STRINGS, ...LIVE_STRINGS });
    this.slides = Array.isArray(config.slides) ? config.slides : [];
    this.sync = true;
    this.adjustments = new Adjustments();
    const paneOptions = {
      prefixUrl: config.prefixUrl || "/static/dist/openseadragon/images/",
      t: this.t,
      onViewChange: (pane) => this._onViewChange(pane),
      onHealthChange: () => this._renderBanner(),
      onActivate: (pane) => this._activate(pane),
      onCanvas: (canvas) => this.adjustments.attach(canvas),
      // Each pane draws its own slide's annotations.
      onOpened: (pane, slide) => this.annotations.open(this._annotationLayer(pane), slide),
      onClosed: (pane) => this.annotations.close(this._annotationLayer(pane)),
    };
    this.annotations = new AnnotationController({ t: this.t, toast: (text, code) => this._showToast(text, code) });
    this.primary = new SlidePane({ ...paneOptions, role: "primary" });
    this.compare = new SlidePane({ ...paneOptions, role: "compare" });
    this.channels = new ChannelLayers(this.primary, () => this._renderChannels());
    this.primary.annotationLayer = this.annotations.addLayer(this.primary);
    this.compare.annotationLayer = this.annotations.addLayer(this.compare);
    this.active = this.primary;
    this.compareOn = false;
    this.updateUrl = debounce(() => this._writeUrl(), 300);
    this._build();
    this.live = new LiveSessionPanel(this, config.live);
    this.panel.insertBefore(this.live.el, this.panel.children[1] || null);
  }

  _annotationLayer(pane) {
    return pane.annotationLayer;
  }

  // ---------------------------------------------------------------- layout

  _button(key, onclick, iconName, extra = {}) {
    const label = this.t(key);
    return h(
      "button",
      { type: "button", class: "ph-btn", title: label, "aria-label": label, onclick, ...extra },
      icon(iconName),
    );
  }

  _build() {
    const t = this.t;
    this.root.classList.add("ph-viewer");
    this.root.replaceChildren();

    this.magOut = h("output", { class: "ph-mag", title: t("magnification") }, "–");
    this.presetGroup = h("div", { class: "ph-group ph-presets", role: "group", "aria-label": t("presets") });
    this.rotationInput = h("input", {
      type: "range", min: "-180", max: "180", step: "1", value: "0",
      class: "ph-rotation", "aria-label": t("rotation"), title: t("rotation"),
      oninput: () => this._rotateTo(Number(this.rotationInput.value)),
    });
    this.rotationOut = h("output", { class: "ph-rotation-value" }, "0°");
    this.compareToggle = h("input", {
      type: "checkbox", class: "ph-compare-toggle",
      onchange: () => this.setCompare(this.compareToggle.checked ? this._compareChoice() : null),
    });
    this.compareSelect = h("select", {
      class: "ph-compare-select", "aria-label": t("compareWith"), title: t("compareWith"),
      onchange: () => { if (this.compareOn) this.setCompare(Number(this.compareSelect.value)); },
    });
    this.syncToggle = h("input", {
      type: "checkbox", class: "ph-sync-toggle", checked: true,
      onchange: () => this.setSync(this.syncToggle.checked),
    });
    this.fullscreenBtn = this._button("fullscreen", () => this.toggleFullscreen(), "fullscreen");
    this.panelBtn = this._button("togglePanel", () => this.togglePanel(), "panel", { "aria-expanded": "true" });

    const toolbar = h(
      "header",
      { class: "ph-toolbar", role: "toolbar" },
      h("div", { class: "ph-group" },
        this._button("zoomOut", () => this._zoomBy(1 / 1.6), "minus"),
        this.magOut,
        this._button("zoomIn", () => this._zoomBy(1.6), "plus"),
        this._button("home", () => this._home(), "home"),
      ),
      this.presetGroup,
      this.annotations.toolbar,
      h("div", { class: "ph-group" },
        this._button("rotateLeft", () => this._rotateStep(-90), "rotate-left"),
        this.rotationInput,
        this.rotationOut,
        this._button("rotateRight", () => this._rotateStep(90), "rotate-right"),
      ),
      h("div", { class: "ph-group" },
        h("label", { class: "ph-check" }, this.compareToggle, h("span", {}, t("compare"))),
        this.compareSelect,
        h("label", { class: "ph-check" }, this.syncToggle, h("span", {}, t("sync"))),
      ),
      h("div", { class: "ph-group ph-push" },
        h("button", { type: "button", class: "ph-btn ph-btn-text", onclick: () => this.copyLink() },
          icon("link"), h("span", {}, t("copyLink"))),
        this.fullscreenBtn,
        this.panelBtn,
      ),
    );

    this.banner = h("div", { class: "ph-banner", role: "status", "aria-live": "polite", hidden: true });
    this.toast = h("div", { class: "ph-toast", role: "status", "aria-live": "polite", hidden: true });
    this.stage = h("div", { class: "ph-stage" }, this.primary.el, this.compare.el, this.banner);
    this.compare.el.hidden = true;

    this.stripEl = h("div", { class: "ph-strip" });
    this.metaEl = h("dl", { class: "ph-meta" });
    this.assocEl = h("div", { class: "ph-assoc" });
    this.assocSection = h("section", { class: "ph-section" }, h("h2", {}, t("associatedImages")), this.assocEl);
    this.channelsEl = h("div", { class: "ph-channels" });
    this.channelsSection = h("section", { class: "ph-section ph-channel-panel", hidden: true },
      h("h2", {}, t("channels")), this.channelsEl);
    this.sliders = {
      brightness: this._slider("brightness", -100, 100, 1, 0),
      contrast: this._slider("contrast", -100, 100, 1, 0),
      gamma: this._slider("gamma", 0.2, 3, 0.05, 1),
    };
    this.panel = h(
      "aside",
      { class: "ph-panel" },
      h("section", { class: "ph-section" }, h("h2", {}, t("slides")), this.stripEl),
      this.channelsSection,
      this.annotations.section,
      h("section", { class: "ph-section" },
        h("h2", {}, t("adjustments")),
        this.sliders.brightness.row, this.sliders.contrast.row, this.sliders.gamma.row,
        h("button", { type: "button", class: "ph-btn ph-btn-text ph-reset", onclick: () => this.setAdjustments({ brightness: 0, contrast: 0, gamma: 1 }) }, t("resetAdjustments")),
      ),
      h("section", { class: "ph-section" }, h("h2", {}, t("metadata")), this.metaEl),
      this.assocSection,
    );
    if (window.matchMedia && window.matchMedia("(max-width: 900px)").matches) this.togglePanel(false);

    this.root.append(toolbar, h("div", { class: "ph-body" }, this.stage, this.panel), this.toast);

    for (const slide of this.slides) {
      this.compareSelect.append(h("option", { value: slide.id }, slide.name || `#${slide.id}`));
    }
    this.compareToggle.disabled = this.slides.length < 2;
    this.compareSelect.disabled = this.slides.length < 2;
    this._renderStrip();

    document.addEventListener("fullscreenchange", () => this._renderFullscreen());
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.root.classList.contains("ph-fullpage")) this.toggleFullscreen();
    });
  }

  _slider(key, min, max, step, value) {
    const out = h("output", { class: "ph-slider-value" }, String(value));
    const input = h("input", {
      type: "range", min: String(min), max: String(max), step: String(step), value: String(value),
      "aria-label": this.t(key), "data-adjust": key,
      oninput: () => {
        this.adjustments.set({ [key]: Number(input.value) });
        out.textContent = input.value;
        if (this.live) this.live.onLocalChange();
        this.updateUrl();  // adjustments are part of the link
      },
    });
    const row = h("label", { class: "ph-slider" }, h("span", { class: "ph-slider-label" }, this.t(key)), input, out);
    return { row, input, out };
  }

  /** The channel panel of a fluorescence slide: on/off, colour and window per channel. */
  _renderChannels() {
    const list = this.channels.channels;
    this.channelsSection.hidden = list.length === 0;
    const t = this.t;
    const fmt = (v) => (Math.abs(v) >= 100 ? String(Math.round(v)) : v.toFixed(1));
    this.channelsEl.replaceChildren(...list.map((st, i) => {
      const out = h("output", { class: "ph-channel-window" });
      const show = () => { const [a, b] = this.channels.rawWindow(st); out.textContent = `${fmt(a)} – ${fmt(b)}`; };
      const lo = h("input", {
        type: "range", min: "0", max: "254", step: "1", value: String(st.lo), class: "ph-channel-lo",
        "aria-label": `${st.name}: ${t("windowLow")}`, title: t("windowLow"),
        oninput: () => { this.channels.set(i, { lo: Number(lo.value) }); hi.min = String(st.lo + 1); show(); },
      });
      const hi = h("input", {
        type: "range", min: "1", max: "255", step: "1", value: String(st.hi), class: "ph-channel-hi",
        "aria-label": `${st.name}: ${t("windowHigh")}`, title: t("windowHigh"),
        oninput: () => { this.channels.set(i, { hi: Number(hi.value) }); show(); },
      });
      const colour = h("input", {
        type: "color", value: `#${st.colour}`, class: "ph-channel-colour",
        "aria-label": `${st.name}: ${t("channelColour")}`, title: t("channelColour"),
        oninput: () => this.channels.set(i, { colour: colour.value }),
      });
      const on = h("input", {
        type: "checkbox", checked: st.on, class: "ph-channel-on", "aria-label": `${st.name}: ${t("channelShown")}`,
        onchange: () => this.channels.set(i, { on: on.checked }),
      });
      show();
      return h("div", { class: "ph-channel", "data-channel": String(i) },
        h("label", { class: "ph-check ph-channel-name" }, on, colour, h("span", { translate: "no" }, st.name)),
        h("div", { class: "ph-channel-sliders" }, lo, hi, out));
    }));
  }

  _renderStrip() {
    this.stripEl.replaceChildren();
    if (!this.slides.length) {
      this.stripEl.append(h("p", { class: "ph-empty" }, this.t("noSlides")));
      return;
    }
    for (const slide of this.slides) {
      const isActive = this.primary.slide && this.primary.slide.id === slide.id;
      const isCompare = this.compareOn && this.compare.slide && this.compare.slide.id === slide.id;
      this.stripEl.append(
        h("button", {
          type: "button",
          class: `ph-thumb${isActive ? " is-active" : ""}${isCompare ? " is-compare" : ""}`,
          "data-slide-id": slide.id,
          "aria-pressed": isActive ? "true" : "false",
          title: slide.name || "",
          onclick: () => this.showSlide(slide.id),
        },
        slide.thumbnailUrl
          ? h("img", { src: slide.thumbnailUrl, alt: "", loading: "lazy", draggable: "false" })
          : h("span", { class: "ph-thumb-empty", "aria-hidden": "true" }),
        h("span", { class: "ph-thumb-name" }, slide.name || `#${slide.id}`),
        slide.stain ? h("span", { class: "ph-thumb-stain" }, slide.stain) : null,
        slide.status === "tiling" ? h("span", { class: "ph-badge" }, this.t("tiling")) : null),
      );
    }
  }

  _renderMetadata(slide) {
    const t = this.t;
    const rows = [];
    const add = (k, v) => {
      if (v === null || v === undefined || v === "") return;
      rows.push(h("dt", {}, k), h("dd", {}, String(v)));
    };
    if (slide) {
      add(t("name"), slide.name);
      add(t("stain"), slide.stain);
      if (slide.width && slide.height) add(t("dimensions"), `${slide.width} × ${slide.height} px`);
      if (slide.mpp) add(t("resolution"), `${Number(slide.mpp).toFixed(3)} µm/px`);
      if (slide.objectivePower) add(t("objectivePower"), `${slide.objectivePower}×`);
      for (const [k, v] of Object.entries(slide.metadata || {})) {
        add(k, v);
        if (rows.length) rows[rows.length - 1].setAttribute("translate", "no");  // read from the file, verbatim
      }
    }
    this.metaEl.replaceChildren(...(rows.length ? rows : [h("dd", {}, t("noMetadata"))]));
    const images = (slide && slide.associatedImages) || [];
    this.assocSection.hidden = images.length === 0;
    this.assocEl.replaceChildren(
      ...images.map((img) =>
        h("figure", { class: "ph-assoc-item" },
          h("img", { src: img.url, alt: this._assocName(img.name), loading: "lazy" }),
          h("figcaption", {}, this._assocName(img.name))),
      ),
    );
  }

  /** The usual associated images (label, macro, thumbnail) by their names in the reader's language. */
  _assocName(name) {
    const key = `assoc_${name}`;
    const text = this.t(key);
    return text && text !== key ? text : name;
  }

  _renderPresets() {
    const presets = magnificationPresets(this.active.nativeMagnification());
    this.presetGroup.hidden = presets.length === 0;
    this.presetGroup.replaceChildren(
      ...presets.map((mag) =>
        h("button", {
          type: "button", class: "ph-btn ph-btn-text ph-preset", "data-mag": mag,
          onclick: () => this.active.setMagnification(mag),
        }, `${mag}×`),
      ),
    );
  }

  _renderReadouts() {
    const pane = this.active;
    const mag = pane.magnification(true);
    this.magOut.hidden = mag === null;
    this.magOut.textContent = mag ? formatMagnification(mag) : "";
    const view = pane.getView(true);
    if (view) {
      const angle = normalizeAngle(view.rotation);
      if (document.activeElement !== this.rotationInput) this.rotationInput.value = String(Math.round(angle));
      this.rotationOut.textContent = `${Math.round(angle)}°`;
    }
  }

  _renderBanner() {
    const down = this.primary.health.storageUnavailable || (this.compareOn && this.compare.health.storageUnavailable);
    this.banner.textContent = down ? this.t("storageUnavailable") : "";
    this.banner.hidden = !down;
  }

  _renderFullscreen() {
    const on = Boolean(document.fullscreenElement) || this.root.classList.contains("ph-fullpage");
    const label = this.t(on ? "exitFullscreen" : "fullscreen");
    this.fullscreenBtn.title = label;
    this.fullscreenBtn.setAttribute("aria-label", label);
    this.fullscreenBtn.classList.toggle("is-on", on);
  }

  /** A short message; an error's stable code (for support staff) is shown small under it. */
  _showToast(text, code = null) {
    this.toast.replaceChildren(text);
    if (code) {
      this.toast.append(h("small", { class: "ph-error-code", "data-testid": "error-code" }, `${this.t("errorCode")}: ${code}`));
    }
    this.toast.hidden = false;
    clearTimeout(this._toastTimer);
    this._toastTimer = setTimeout(() => { this.toast.hidden = true; }, code ? 6000 : 2200);
  }

  // ---------------------------------------------------------------- actions

  _activate(pane, force = false) {
    if (this.active === pane && !force) return;
    this.active = pane;
    if (pane.annotationLayer) this.annotations.activate(pane.annotationLayer);
    this.primary.el.classList.toggle("is-active", pane === this.primary && this.compareOn);
    this.compare.el.classList.toggle("is-active", pane === this.compare && this.compareOn);
    this._renderPresets();
    this._renderReadouts();
  }

  _zoomBy(factor) {
    const vp = this.active.viewer && this.active.viewer.viewport;
    if (!vp) return;
    vp.zoomBy(factor);
    vp.applyConstraints();
  }

  _home() {
    const vp = this.active.viewer && this.active.viewer.viewport;
    if (vp) vp.goHome();
  }

  _rotateTo(deg) {
    const vp = this.active.viewer && this.active.viewer.viewport;
    if (vp) vp.setRotation(deg, true);
  }

  _rotateStep(delta) {
    const vp = this.active.viewer && this.active.viewer.viewport;
    if (!vp) return;
    const snapped = Math.round(vp.getRotation() / 90) * 90;
    vp.setRotation(snapped + delta);
  }

  _onViewChange(pane) {
    // Only the pane the user drives propagates; the follower's own change events are
    // ignored, which is what prevents A→B→A feedback loops.
    if (this.compareOn && this.sync && pane === this.active && !this._applyingSync) {
      const other = pane === this.primary ? this.compare : this.primary;
      this._applyingSync = true;
      try {
        other.applySyncView(pane.getSyncView());
      } finally {
        this._applyingSync = false;
      }
    }
    if (pane === this.active) this._renderReadouts();
    if (pane === this.primary && this.live) this.live.onLocalChange();
    this.updateUrl();
  }

  _compareChoice() {
    const current = Number(this.compareSelect.value);
    if (current && (!this.primary.slide || current !== this.primary.slide.id)) return current;
    const other = this.slides.find((s) => !this.primary.slide || s.id !== this.primary.slide.id);
    return other ? other.id : null;
  }

  _slideById(id) {
    return this.slides.find((s) => Number(s.id) === Number(id)) || null;
  }

  /** Open a slide in the main pane, optionally at a given view. */
  async showSlide(id, view = null) {
    const slide = this._slideById(id) || this.slides[0];
    if (!slide) return false;
    this._activate(this.primary);
    this._renderMetadata(slide);
    this.annotations.prefetch(slide);  // annotations download while the image opens
    const opened = this.primary.open(slide);
    this._renderStrip();
    const ok = await opened;
    if (ok) await this.channels.open(slide);
    else this.channels.clear();
    if (ok && view) this.primary.setView(view, true);
    this._renderPresets();
    this._renderReadouts();
    this._renderStrip();
    if (!this.compareOn) {
      const choice = this._compareChoice();
      if (choice !== null) this.compareSelect.value = String(choice);
    }
    if (ok && this.compareOn && this.sync) this._syncFrom(this.primary);
    this.updateUrl();
    return ok;
  }

  _syncFrom(pane) {
    const other = pane === this.primary ? this.compare : this.primary;
    if (!this.compareOn || !other.item || !pane.item) return;
    this._applyingSync = true;
    try {
      other.applySyncView(pane.getSyncView());
    } finally {
      this._applyingSync = false;
    }
  }

  /** Show (slide id) or hide (null) the side-by-side pane. */
  async setCompare(id, view = null) {
    const slide = id === null || id === undefined ? null : this._slideById(id);
    if (!slide) {
      this.compareOn = false;
      this.compareToggle.checked = false;
      this.compare.el.hidden = true;
      this.stage.classList.remove("is-split");
      this.compare.close();
      this._activate(this.primary);
      this.primary.el.classList.remove("is-active");
      this._renderStrip();
      this._renderBanner();
      this.updateUrl();
      return true;
    }
    this.compareOn = true;
    this.annotations.prefetch(slide);
    this.compareToggle.checked = true;
    this.compareSelect.value = String(slide.id);
    this.compare.el.hidden = false;
    this.stage.classList.add("is-split");
    this._activate(this.active, true);
    const ok = await this.compare.open(slide);
    if (ok) {
      if (view) this.compare.setView(view, true);
      else if (this.sync) this._syncFrom(this.primary);
    }
    this._renderStrip();
    this.updateUrl();
    return ok;
  }

  setSync(on) {
    this.sync = Boolean(on);
    this.syncToggle.checked = this.sync;
    if (this.sync) this._syncFrom(this.active);
  }

  setAdjustments(values) {
    this.adjustments.set(values);
    for (const [key, slider] of Object.entries(this.sliders)) {
      const value = this.adjustments.get()[key];
      slider.input.value = String(value);
      slider.out.textContent = String(value);
    }
    if (this.live) this.live.onLocalChange();
    this.updateUrl();
  }

  togglePanel(force) {
    const open = force === undefined ? this.panel.hidden : Boolean(force);
    this.panel.hidden = !open;
    this.panelBtn.setAttribute("aria-expanded", open ? "true" : "false");
    this.panelBtn.classList.toggle("is-on", open);
  }

  toggleFullscreen() {
    const root = this.root;
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (root.classList.contains("ph-fullpage")) {
      root.classList.remove("ph-fullpage");
    } else if (root.requestFullscreen) {
      // Fall back to a fixed full-window layout where the Fullscreen API is refused (iOS, iframes).
      root.requestFullscreen().catch(() => root.classList.add("ph-fullpage")).finally(() => this._renderFullscreen());
    } else {
      root.classList.add("ph-fullpage");
    }
    this._renderFullscreen();
  }

  getState() {
    const view = this.primary.getView(false) || {};
    return {
      slideId: this.primary.slide ? this.primary.slide.id : null,
      compareSlideId: this.compareOn && this.compare.slide ? this.compare.slide.id : null,
      x: view.x, y: view.y, zoom: view.zoom, rotation: view.rotation,
      magnification: this.primary.magnification(false),
      pixelRatio: view.pixelRatio ?? null,
      compareView: this.compareOn ? this.compare.getView(false) : null,
      compareMagnification: this.compareOn ? this.compare.magnification(false) : null,
      sync: this.sync,
      adjustments: this.adjustments.get(),
      url: this.linkUrl(),
    };
  }

  async setState(state = {}) {
    if (state.sync !== undefined) this.setSync(state.sync);
    if (state.adjustments) this.setAdjustments(state.adjustments);
    const view = {};
    for (const k of VIEW_KEYS) if (state[k] !== undefined && state[k] !== null) view[k] = Number(state[k]);
    if (state.slideId !== undefined && (!this.primary.slide || Number(state.slideId) !== this.primary.slide.id)) {
      await this.showSlide(state.slideId, view);
    } else if (Object.keys(view).length) {
      this._activate(this.primary);
      this.primary.setView(view, true);
    }
    if (state.compareSlideId !== undefined) {
      const current = this.compareOn && this.compare.slide ? this.compare.slide.id : null;
      if (state.compareSlideId !== current) await this.setCompare(state.compareSlideId);
    }
    this._renderReadouts();
    this._writeUrl();
    return this.getState();
  }

  linkUrl() {
    const view = this.primary.getView(false);
    if (!view || !this.primary.slide) return window.location.href;
    return buildDeepLink(window.location.href, {
      slideId: this.primary.slide.id,
      ...view,
      rotation: normalizeAngle(view.rotation),
      adjustments: this.adjustments.get(),
      compareSlideId: this.compareOn && this.compare.slide ? this.compare.slide.id : null,
    });
  }

  _writeUrl() {
    const href = this.linkUrl();
    if (href !== window.location.href) window.history.replaceState(window.history.state, "", href);
  }

  async copyLink() {
    this.updateUrl.flush();
    const href = this.linkUrl();
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(href);
        ok = true;
      }
    } catch (err) {
      ok = false;
    }
    if (!ok) {
      const area = h("textarea", { class: "ph-offscreen", readonly: true });
      area.value = href;
      document.body.append(area);
      area.select();
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      area.remove();
    }
    this.lastCopiedLink = ok ? href : null;
    this._showToast(this.t(ok ? "linkCopied" : "copyFailed"));
    return ok ? href : null;
  }

  /** Open the initial slide and view: URL parameters win over config.initial. */
  async start() {
    const initial = { ...(this.config.initial || {}) };
    const fromUrl = parseDeepLink(window.location.search);
    for (const [k, v] of Object.entries(fromUrl)) if (v !== undefined) initial[k] = v;
    if (!this.slides.length) return false;
    if (initial.adjustments) this.setAdjustments(initial.adjustments);
    const view = {};
    for (const k of VIEW_KEYS) {
      if (initial[k] !== undefined && initial[k] !== null) view[k] = Number(initial[k]);
    }
    // A link's magnification wins over the server's echo of an old link's window-relative zoom.
    if (view.magnification || view.pixelRatio) delete view.zoom;
    const ok = await this.showSlide(initial.slideId ?? this.slides[0].id, Object.keys(view).length ? view : null);
    if (initial.compareSlideId !== undefined && initial.compareSlideId !== null) {
      await this.setCompare(initial.compareSlideId);
    }
    return ok;
  }
}

function boot() {
  const root = document.getElementById("viewer-app");
  if (!root) return;
  const config = readJsonConfig("viewer-config") || {};
  const app = new ViewerApp(root, config);
  const ready = app.start();
  window.pathologyViewer = {
    app,
    ready,
    get viewer() { return app.primary.viewer; },
    get compareViewer() { return app.compareOn ? app.compare.viewer : null; },
    getState: () => app.getState(),
    setState: (state) => app.setState(state),
    copyLink: () => app.copyLink(),
    /** Annotation tools: state for tests/benchmarks, and the controller itself. */
    annotations: {
      controller: app.annotations,
      state: () => app.annotations.debugState(),
      layer: (role = "primary") => (role === "compare" ? app.compare : app.primary).annotationLayer,
    },
    /** The live session panel (tests, bench/live_latency.py). */
    live: {
      panel: app.live,
      state: () => app.live.debugState(),
      join: (opts) => app.live.join(opts),
      drop: () => app.live.transport && app.live.transport.drop(),
    },
    /** Fluorescence channels of the main pane: state, and set(index, {on, colour, lo, hi}). */
    channels: {
      state: () => app.channels.state(),
      set: (index, changes) => app.channels.set(index, changes),
    },
    /** Tile/draw health per pane, for tests and diagnostics. */
    drawState: () => ({
      primary: { ...app.primary.health, canvas: app.primary.canvasStats() },
      compare: app.compareOn ? { ...app.compare.health, canvas: app.compare.canvasStats() } : null,
      storageBannerVisible: !app.banner.hidden,
    }),
  };
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
