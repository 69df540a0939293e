/**
 * The viewer's live panel: joins a consultation's live session, sends the presenter's view
 * (coalesced) and pointer, follows the presenter's view when following, shows presence,
 * control requests and the chat, and reloads annotations another participant changed.
 */
import OpenSeadragon from "openseadragon";
import { h } from "../dom.js";
import { annotationWrites } from "../annotations/api.js";
import { Coalescer, compactView } from "./coalesce.js";
import { LiveTransport } from "./transport.js";

const VIEW_INTERVAL_MS = 120;
const POINTER_INTERVAL_MS = 200;

function fill(text, params) {
  return text.replace(/%\((\w+)\)s/g, (_, k) => (params[k] ?? ""));
}

export class LiveSessionPanel {
  /**
   * @param {any} app  the ViewerApp
   * @param {{consultations: {id: number}[], wsPath: string, ssePath: string, sendPath: string}} config
   */
  constructor(app, config) {
    this.app = app;
    this.t = app.t;
    this.config = config || { consultations: [] };
    this.consultationId = this.config.consultations && this.config.consultations.length ? this.config.consultations[0].id : null;
    this.transport = null;
    this.me = null;
    this.state = null;
    this.following = true;
    this.applying = false;
    this.chat = [];
    this.status = "idle";
    this.received = { view: 0, bytes: 0 };
    this.lastViewAt = 0;
    this.viewCoalescer = new Coalescer((view) => this._send({ type: "view", view }), { interval: VIEW_INTERVAL_MS });
    this.pointerCoalescer = new Coalescer((p) => this._send({ type: "pointer", ...p }), {
      interval: POINTER_INTERVAL_MS, same: (a, b) => a.x === b.x && a.y === b.y,
    });
    this._build();
  }

  // ------------------------------------------------------------ layout
  _build() {
    const t = this.t;
    this.statusEl = h("p", { class: "ph-live-status", "data-testid": "live-status", role: "status", "aria-live": "polite" });
    this.joinBtn = h("button", { type: "button", class: "ph-btn ph-btn-text ph-live-join", "data-testid": "live-join",
      onclick: () => this.join() }, t("liveJoin"));
    this.leaveBtn = h("button", { type: "button", class: "ph-btn ph-btn-text", "data-testid": "live-leave", hidden: true,
      onclick: () => this.leave() }, t("liveLeave"));
    this.followBtn = h("button", { type: "button", class: "ph-btn ph-btn-text ph-live-follow", "data-testid": "live-follow", hidden: true,
      onclick: () => this.follow() }, t("liveFollow"));
    this.requestBtn = h("button", { type: "button", class: "ph-btn ph-btn-text", "data-testid": "live-request", hidden: true,
      onclick: () => this._send({ type: "request" }) }, t("liveRequestControl"));
    this.peopleEl = h("ul", { class: "ph-live-people", "data-testid": "live-people", "aria-label": t("liveParticipants") });
    this.chatLog = h("ol", { class: "ph-live-chat-log", "data-testid": "live-chat-log", "aria-label": t("liveChat") });
    this.chatInput = h("input", { type: "text", maxlength: "2000", class: "ph-live-chat-input", "data-testid": "live-chat-input",
      placeholder: t("liveChatPlaceholder"), "aria-label": t("liveChatPlaceholder") });
    this.chatForm = h("form", { class: "ph-live-chat-form", hidden: true, onsubmit: (e) => { e.preventDefault(); this.sendChat(); } },
      this.chatInput, h("button", { type: "submit", class: "ph-btn ph-btn-text", "data-testid": "live-chat-send" }, t("liveSend")));
    this.body = h("div", { class: "ph-live-body", hidden: true },
      h("div", { class: "ph-live-actions" }, this.followBtn, this.requestBtn),
      h("h3", {}, t("liveParticipants")), this.peopleEl,
      h("h3", {}, t("liveChat")), this.chatLog, this.chatForm);
    const title = this.consultationId ? fill(t("liveConsultation"), { id: this.consultationId }) : "";
    this.el = h("section", { class: "ph-section ph-live", "data-testid": "live-panel" },
      h("h2", {}, t("liveSession")),
      this.consultationId
        ? [h("p", { class: "ph-live-consultation" }, title), h("div", { class: "ph-live-actions" }, this.joinBtn, this.leaveBtn)]
        : h("p", { class: "ph-empty" }, t("liveNoConsultation")),
      this.statusEl, this.body);
    this.pointerEl = h("div", { class: "ph-live-pointer", "data-testid": "live-pointer", hidden: true, "aria-hidden": "true" });
    this.app.primary.el.append(this.pointerEl);
    // Any pan or zoom by hand while following means "let me look around on my own".
    for (const type of ["pointerdown", "wheel", "keydown"]) {
      this.app.primary.el.addEventListener(type, (e) => this._onLocalInput(e), { capture: true, passive: true });
    }
    this.app.primary.el.addEventListener("pointermove", (e) => this._onPointerMove(e), { passive: true });
    annotationWrites.addEventListener("saved", (e) => this.announceAnnotations(e.detail.slideId));
    this.app.primary.el.addEventListener("pointerleave", () => { if (this.isPresenter) this.pointerCoalescer.push({ x: null, y: null }); });
  }

  get joined() { return this.transport !== null; }
  get isPresenter() { return Boolean(this.state && this.me !== null && this.state.presenterId === this.me); }

  _url(template) {
    return template.replace("{id}", String(this.consultationId));
  }

  // ------------------------------------------------------------ connection
  join(options = {}) {
    if (this.joined || !this.consultationId) return;
    const csrf = document.querySelector('meta[name="csrf-token"]');
    this.transport = new LiveTransport({
      wsUrl: this._url(this.config.wsPath), sseUrl: this._url(this.config.ssePath), sendUrl: this._url(this.config.sendPath),
      csrf: csrf ? csrf.getAttribute("content") : null, forceSse: Boolean(options.sse),
      onMessage: (m) => this._onMessage(m), onStatus: (s) => this._onStatus(s),
    });
    this.following = true;
    this._onStatus("connecting");
    this.transport.connect();
    this.joinBtn.hidden = true;
    this.leaveBtn.hidden = false;
  }

  leave() {
    if (!this.transport) return;
    this.transport.close();
    this.transport = null;
    this.state = null;
    this.status = "idle";
    this.viewCoalescer.reset();
    this.joinBtn.hidden = false;
    this.leaveBtn.hidden = true;
    this.body.hidden = true;
    this.pointerEl.hidden = true;
    this.statusEl.textContent = "";
  }

  _send(message) {
    return this.transport ? this.transport.send(message) : false;
  }

  _onStatus(status) {
    this.status = status;
    if (status === "open") this.viewCoalescer.reset();
    if (status === "refused") {
      this.transport.close();
      this.transport = null;
      this.joinBtn.hidden = true;
      this.leaveBtn.hidden = true;
    }
    this._render();
  }

  _onMessage(m) {
    switch (m.type) {
      case "hello":
        this.me = m.me;
        this.chat = m.chat || [];
        this._renderChat();
        this._setState(m.state);
        if (this.isPresenter) this._publishView();
        break;
      case "state": this._setState(m); break;
      case "view": this._onView(m); break;
      case "pointer": this._onPointer(m); break;
      case "chat":
        if (!this.chat.some((c) => c.id === m.id)) { this.chat.push(m); this._renderChat(); }
        break;
      case "annotations": this._onAnnotations(m); break;
      case "error":
        if (m.code === "not_found" || m.code === "forbidden" || m.code === "live_not_signed_in") this._onStatus("refused");
        else this.app._showToast(m.message, m.code);
        break;
      default: break;
    }
  }

  _setState(state) {
    const wasPresenter = this.isPresenter;
    this.state = state;
    if (this.isPresenter && !wasPresenter) {
      this.following = true;
      this.viewCoalescer.reset();
      this._publishView();   // control just arrived: everyone jumps to what I am looking at
    }
    if (!this.isPresenter && this.following && state.view) this._apply(state.view);
    if (this.isPresenter) this.pointerEl.hidden = true;
    this._render();
  }

  // ------------------------------------------------------------ view state
  /** Called by the viewer on every view or adjustment change of the primary pane. */
  onLocalChange() {
    if (!this.joined || this.applying) return;
    if (this.isPresenter) this._publishView();
  }

  currentView() {
    const s = this.app.getState();
    return compactView({
      slideId: s.slideId, x: s.x, y: s.y, magnification: s.magnification || null,
      zoom: s.magnification ? null : s.zoom, rotation: s.rotation,
      brightness: s.adjustments.brightness, contrast: s.adjustments.contrast, gamma: s.adjustments.gamma,
    });
  }

  _publishView() {
    if (!this.app.primary.item) return;
    this.viewCoalescer.push(this.currentView());
  }

  _onView(m) {
    this.received.view += 1;
    this.lastViewAt = performance.now();
    if (this.state) this.state.view = m.view;
    if (!this.isPresenter && this.following) this._apply(m.view);
  }

  async _apply(view) {
    const app = this.app;
    this.applying = true;
    try {
      const adjustments = { brightness: view.brightness ?? 0, contrast: view.contrast ?? 0, gamma: view.gamma ?? 1 };
      const current = app.adjustments.get();
      if (current.brightness !== adjustments.brightness || current.contrast !== adjustments.contrast || current.gamma !== adjustments.gamma) {
        app.setAdjustments(adjustments);
      }
      const target = { x: view.x, y: view.y, rotation: view.rotation, magnification: view.magnification, zoom: view.zoom };
      if (view.slideId && (!app.primary.slide || app.primary.slide.id !== view.slideId)) {
        await app.showSlide(view.slideId, target);
      } else {
        app.primary.setView(target, true);
        app._renderReadouts();
      }
      this.appliedAt = performance.now();
      this.appliedView = view;
    } finally {
      this.applying = false;
    }
  }

  _onLocalInput(e) {
    if (!this.joined || this.isPresenter || !this.following) return;
    if (e.type === "keydown" && !["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "+", "-", "=", "0"].includes(e.key)) return;
    this.following = false;
    this._render();
  }

  /** Back to the presenter's view. */
  follow() {
    this.following = true;
    if (this.state && this.state.view) this._apply(this.state.view);
    this._render();
  }

  // ------------------------------------------------------------ pointer
  _onPointerMove(e) {
    if (!this.joined || !this.isPresenter || !this.app.primary.viewer) return;
    const vp = this.app.primary.viewer.viewport;
    const rect = this.app.primary.el.getBoundingClientRect();
    const p = vp.viewerElementToViewportCoordinates(new OpenSeadragon.Point(e.clientX - rect.left, e.clientY - rect.top));
    this.pointerCoalescer.push({ x: Number(p.x.toPrecision(6)), y: Number(p.y.toPrecision(6)) });
  }

  _onPointer(m) {
    if (this.isPresenter || !this.app.primary.viewer) return;
    if (m.x === null || m.x === undefined || !this.following) { this.pointerEl.hidden = true; return; }
    const viewer = this.app.primary.viewer;
    const at = viewer.viewport.viewportToViewerElementCoordinates(new OpenSeadragon.Point(m.x, m.y));
    this.pointerEl.style.transform = `translate(${Math.round(at.x)}px, ${Math.round(at.y)}px)`;
    this.pointerEl.hidden = false;
    this.pointer = { x: m.x, y: m.y };
  }

  // ------------------------------------------------------------ annotations and chat
  /** The viewer saved an annotation change on this slide: tell the others to reload. */
  announceAnnotations(slideId) {
    if (this.joined) this._send({ type: "annotations", slideId });
  }

  _onAnnotations(m) {
    if (m.userId === this.me) return;
    const app = this.app;
    for (const pane of [app.primary, app.compare]) {
      if (pane.slide && pane.slide.id === m.slideId && pane.item) {
        app.annotations.open(pane.annotationLayer, pane.slide);
      }
    }
    this.annotationReloads = (this.annotationReloads || 0) + 1;
    const who = this._person(m.userId);
    app._showToast(fill(this.t("liveAnnotationsUpdated"), { name: who ? who.name : "" }));
  }

  sendChat() {
    const text = this.chatInput.value.trim();
    if (!text) return;
    if (this._send({ type: "chat", text })) this.chatInput.value = "";
  }

  _person(userId) {
    return this.state ? this.state.participants.find((p) => p.userId === userId) : null;
  }

  // ------------------------------------------------------------ rendering
  _render() {
    const t = this.t;
    const joined = this.joined && this.state && this.status === "open";
    this.body.hidden = !joined;
    this.chatForm.hidden = !joined;
    let status = "";
    if (this.status === "connecting") status = t("liveConnecting");
    else if (this.status === "reconnecting") status = t("liveReconnecting");
    else if (this.status === "refused") status = t("liveRefused");
    else if (joined) {
      const presenter = this._person(this.state.presenterId);
      if (this.isPresenter) status = t("liveYouPresent");
      else if (this.following) status = fill(t("liveFollowing"), { name: presenter ? presenter.name : "" });
      else status = t("liveLookingAround");
    }
    this.statusEl.textContent = status;
    this.statusEl.dataset.state = this.status === "open" ? (this.isPresenter ? "presenting" : this.following ? "following" : "free") : this.status;
    this.el.classList.toggle("is-refused", this.status === "refused");
    if (!joined) return;
    this.followBtn.hidden = this.isPresenter || this.following;
    const asked = this.state.requests.includes(this.me);
    this.requestBtn.hidden = this.isPresenter;
    this.requestBtn.disabled = asked;
    this.requestBtn.textContent = t(asked ? "liveRequested" : "liveRequestControl");
    this.peopleEl.replaceChildren(...this.state.participants.map((p) => {
      const presenting = p.userId === this.state.presenterId;
      const asks = this.state.requests.includes(p.userId);
      return h("li", { class: `ph-live-person${presenting ? " is-presenter" : ""}`, "data-user-id": p.userId },
        h("span", { class: "ph-live-dot", "aria-hidden": "true" }),
        h("span", { class: "ph-live-name" }, p.name),
        presenting ? h("span", { class: "ph-badge" }, t("livePresenter")) : null,
        asks ? h("span", { class: "ph-live-asks" }, t("liveAsksControl")) : null,
        this.isPresenter && !presenting
          ? h("button", { type: "button", class: "ph-btn ph-btn-text ph-live-handover", "data-testid": "live-handover",
            "data-user-id": p.userId, onclick: () => this._send({ type: "handover", to: p.userId }) }, t("liveHandOver"))
          : null);
    }));
  }

  _renderChat() {
    this.chatLog.replaceChildren(...this.chat.slice(-100).map((c) =>
      h("li", { class: "ph-live-chat-line" },
        h("span", { class: "ph-live-chat-name" }, c.name), " ",
        h("span", { class: "ph-live-chat-text" }, c.text))));
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  debugState() {
    return {
      status: this.status, me: this.me, presenterId: this.state ? this.state.presenterId : null,
      following: this.following, isPresenter: this.isPresenter,
      participants: this.state ? this.state.participants.map((p) => p.userId) : [],
      requests: this.state ? this.state.requests : [], mode: this.transport ? this.transport.mode : null,
      bytesSent: this.transport ? this.transport.bytesSent : 0, messagesSent: this.transport ? this.transport.messagesSent : 0,
      received: { ...this.received }, appliedView: this.appliedView || null, appliedAt: this.appliedAt || null,
      pointer: this.pointer || null, pointerVisible: !this.pointerEl.hidden, chat: this.chat.map((c) => c.text),
      annotationReloads: this.annotationReloads || 0,
    };
  }
}
