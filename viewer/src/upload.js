/**
 * Resumable slide upload widget (tus) for the case page.
 *
 * Reads #upload-config, renders into #upload-app and exposes
 * window.pathologyUploader for tests. Each file is hashed (SHA-256, in a
 * worker) before upload so the server can verify integrity end to end.
 */
import "./upload.css";
import * as tus from "tus-js-client";
import { h, readJsonConfig, makeTranslator } from "./dom.js";
import { icon } from "./icons.js";
import { UPLOAD_STRINGS } from "./upload/strings.js";
import { formatBytes, formatDuration, formatRate, RateMeter } from "./upload/format.js";

const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
const TERMINAL_OK = new Set(["ready", "done", "complete", "completed"]);
const TERMINAL_FAIL = new Set(["failed", "error", "rejected"]);
// "Not now" answers: every byte may already be on the server (storage down, the file being
// stored) or the server is briefly busy. The widget waits Retry-After and resumes by itself,
// however long that takes: tus resumes with HEAD, so nothing already received is sent again.
const WAIT_STATUSES = new Set([423, 503]);
const STORAGE_CODES = new Set(["storage_unavailable", "database_unavailable", "processing_failed", "upload_storing"]);
const DEFAULT_WAIT_S = 10;
const MAX_WAIT_S = 120;

// Resolved now: document.currentScript is only set while this script first runs.
const SCRIPT_SRC = document.currentScript ? document.currentScript.src : null;

function defaultWorkerUrl() {
  if (SCRIPT_SRC) return new URL("sha256-worker.js", SCRIPT_SRC).toString();
  return "/static/dist/sha256-worker.js";
}

function serverError(err) {
  const response = err && err.originalResponse;
  if (!response) return null;
  let body = "";
  try {
    body = response.getBody() || "";
  } catch (e) {
    body = "";
  }
  try {
    const json = JSON.parse(body);
    if (json && json.error) return json.error;
    if (json && typeof json.message === "string") return { message: json.message };
  } catch (e) {
    /* not JSON (HEAD answers have no body at all) */
  }
  return null;
}

/** Pull {"error":{"message"}} out of a tus error's response, if the server sent one. */
function serverErrorMessage(err) {
  const error = serverError(err);
  return error && error.message ? String(error.message) : null;
}

function header(response, name) {
  try {
    return response.getHeader(name);
  } catch (e) {
    return null;
  }
}

/**
 * For an answer meaning "not now, ask again later": {seconds, code}; otherwise null.
 * 503/423, or any answer with Retry-After that names a storage hand-over (a 500 that kept the file).
 */
function waitAdvice(err) {
  const response = err && err.originalResponse;
  if (!response) return null;
  const status = response.getStatus();
  const error = serverError(err);
  const code = (error && error.code) || header(response, "Upload-Error") || null;
  const retryAfter = Number.parseInt(header(response, "Retry-After") || "", 10);
  if (!WAIT_STATUSES.has(status) && !(Number.isFinite(retryAfter) && STORAGE_CODES.has(code))) return null;
  const seconds = Number.isFinite(retryAfter) ? Math.min(MAX_WAIT_S, Math.max(1, retryAfter)) : DEFAULT_WAIT_S;
  return { seconds, code, message: error && error.message ? String(error.message) : null };
}

/** The stable error code of a tus error's JSON body ({"error":{"code"}}), if any. */
function serverErrorCode(err) {
  const error = serverError(err);
  return error && error.code ? String(error.code) : null;
}

/** Serialises hashing through one worker: parallel hashing would only contend for disk. */
class HashQueue {
  constructor(url) {
    this.url = url;
    this.worker = null;
    this.jobs = new Map();
    this.chain = Promise.resolve();
  }

  _ensureWorker() {
    if (this.worker) return this.worker;
    this.worker = new Worker(this.url);
    this.worker.onmessage = (event) => {
      const msg = event.data;
      const job = this.jobs.get(msg.id);
      if (!job) return;
      if (msg.type === "progress") job.onProgress(msg.loaded, msg.total);
      else if (msg.type === "done") { this.jobs.delete(msg.id); job.resolve(msg); }
      else if (msg.type === "error") { this.jobs.delete(msg.id); job.reject(new Error(msg.message)); }
      else if (msg.type === "cancelled") { this.jobs.delete(msg.id); job.reject(new Error("cancelled")); }
    };
    this.worker.onerror = (event) => {
      for (const job of this.jobs.values()) job.reject(new Error(event.message || "worker error"));
      this.jobs.clear();
      this.worker = null;
    };
    return this.worker;
  }

  hash(id, file, onProgress) {
    const run = () =>
      new Promise((resolve, reject) => {
        this.jobs.set(id, { resolve, reject, onProgress });
        this._ensureWorker().postMessage({ type: "hash", id, file });
      });
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => {});
    return result;
  }

  cancel(id) {
    if (this.worker) this.worker.postMessage({ type: "cancel", id });
  }
}

let nextId = 1;

class UploadItem {
  constructor(app, file) {
    this.app = app;
    this.t = app.t;
    this.id = nextId++;
    this.file = file;
    this.state = "queued";
    this.hashLoaded = 0;
    this.bytesSent = 0;
    this.bytesTotal = file.size;
    this.sha256 = null;
    this.hashEngine = null;
    this.uploadUrl = null;
    this.error = null;
    this.errorStatus = null;
    this.serverStatus = null;
    this.serverMessage = null;
    this.waitTimer = null;
    this.waits = 0;
    this.resumed = false;
    this.meter = new RateMeter();
    this.speed = null;
    this.upload = null;
    this._buildDom();
  }

  _buildDom() {
    const t = this.t;
    this.fill = h("div", { class: "ph-progress-fill" });
    this.bar = h("div", {
      class: "ph-progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0",
    }, this.fill);
    this.statusEl = h("div", { class: "ph-upload-status", "aria-live": "polite" });
    this.pauseBtn = h("button", { type: "button", class: "ph-btn", title: t("pause"), "aria-label": t("pause"), onclick: () => this.pause() }, icon("pause"));
    this.resumeBtn = h("button", { type: "button", class: "ph-btn", title: t("resume"), "aria-label": t("resume"), onclick: () => this.resume() }, icon("play"));
    this.removeBtn = h("button", { type: "button", class: "ph-btn", title: t("remove"), "aria-label": t("remove"), onclick: () => this.remove() }, icon("close"));
    this.el = h("li", { class: "ph-upload-item", "data-upload-id": this.id },
      h("div", { class: "ph-upload-head" },
        h("span", { class: "ph-upload-name", title: this.file.name }, this.file.name),
        h("span", { class: "ph-upload-size" }, formatBytes(this.file.size)),
        h("span", { class: "ph-upload-actions" }, this.pauseBtn, this.resumeBtn, this.removeBtn)),
      this.bar,
      this.statusEl,
      this.dupEl = h("div", { class: "ph-duplicate", "data-role": "duplicate", hidden: true }));
    this.render();
  }

  snapshot() {
    return {
      id: this.id, name: this.file.name, size: this.file.size, state: this.state,
      hashProgress: this.file.size ? this.hashLoaded / this.file.size : 1,
      bytesSent: this.bytesSent, bytesTotal: this.bytesTotal,
      progress: this.bytesTotal ? this.bytesSent / this.bytesTotal : 0,
      speed: this.speed, sha256: this.sha256, hashEngine: this.hashEngine,
      uploadUrl: this.uploadUrl, resumed: this.resumed,
      error: this.error, errorStatus: this.errorStatus, serverStatus: this.serverStatus,
      waits: this.waits,
      duplicates: (this.duplicates || []).map((d) => d.id),
      statusText: this.statusEl.textContent,
    };
  }

  _tusOptions() {
    const cfg = this.app.config;
    return {
      endpoint: cfg.endpoint,
      chunkSize: Number(cfg.chunkSize) > 0 ? Number(cfg.chunkSize) : 8 * 1024 * 1024,
      retryDelays: RETRY_DELAYS,
      headers: this.app.headers,
      metadata: {
        filename: this.file.name,
        filetype: this.file.type || "application/octet-stream",
        case_id: String(cfg.caseId),
      },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: (sent, total) => this._onProgress(sent, total),
      onSuccess: () => this._onSuccess(),
      onError: (err) => this._onError(err),
      // "Not now" answers are not errors to count down: wait as told (see _onError) instead.
      onShouldRetry: (err) => {
        if (waitAdvice(err)) return false;
        const status = err && err.originalResponse ? err.originalResponse.getStatus() : 0;
        return (status < 400 || status >= 500 || status === 409) && navigator.onLine !== false;
      },
    };
  }

  async start() {
    this.upload = new tus.Upload(this.file, this._tusOptions());
    // A stored fingerprint (same name/size/mtime, same endpoint and case) means the
    // file was partly uploaded before a reload: resume it and reuse its hash.
    let previous = [];
    try {
      previous = await this.upload.findPreviousUploads();
    } catch (e) {
      previous = [];
    }
    const match = previous.find(
      (p) => p.metadata && p.metadata.case_id === String(this.app.config.caseId) && p.metadata.sha256,
    );
    if (match) {
      this.sha256 = match.metadata.sha256;
      this.upload.options.metadata.sha256 = this.sha256;
      this.upload.resumeFromPreviousUpload(match);
      this.resumed = true;
      this.state = "uploading";
      this.statusOverride = this.t("resuming");
      this.render();
      this.upload.start();
      return;
    }
    this.state = "hashing";
    this.render();
    try {
      const result = await this.app.hasher.hash(this.id, this.file, (loaded) => {
        this.hashLoaded = loaded;
        this.render();
      });
      this.sha256 = result.sha256;
      this.hashEngine = result.engine;
    } catch (err) {
      if (this.state === "removed") return;
      this.state = "error";
      // reading the file needs the hashing worker script: offline, that load fails, not the file
      this.error = this.t(navigator.onLine === false ? "networkError" : "hashFailed");
      this.render();
      return;
    }
    if (this.state === "removed") return;
    this.upload.options.metadata.sha256 = this.sha256;
    // Before any byte is sent: is this file already a slide of the case?
    const existing = await this._findDuplicates();
    if (this.state === "removed") return;
    if (existing.length) {
      this._showDuplicate(existing);
      return;
    }
    this._send();
  }

  _send() {
    this.state = "uploading";
    this.meter.reset(0);
    this.render();
    this.upload.start();
  }

  async _findDuplicates() {
    const url = this.app.config.duplicateCheckUrl;
    if (!url || !this.sha256) return [];
    try {
      const sep = url.includes("?") ? "&" : "?";
      const response = await fetch(`${url}${sep}sha256=${encodeURIComponent(this.sha256)}`, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (!response.ok) return [];
      const json = await response.json();
      return Array.isArray(json.slides) ? json.slides : [];
    } catch (e) {
      return []; // the server checks again when the upload is created
    }
  }

  /** Warn, link to the existing slide, and let the user choose: upload anyway or not at all. */
  _showDuplicate(slides) {
    const t = this.t;
    const first = slides[0];
    this.duplicates = slides;
    this.state = "duplicate";
    const href = first.viewer_url || `${window.location.pathname}#slide-${first.id}`;
    this.dupEl.replaceChildren(
      h("a", { href, "data-testid": "duplicate-link" }, t("openExisting", { label: first.label })),
      h("button", { type: "button", class: "ph-btn ph-btn-primary", "data-testid": "upload-anyway",
        onclick: () => this.uploadAnyway() }, t("uploadAnyway")),
      h("button", { type: "button", class: "ph-btn", "data-testid": "skip-duplicate",
        onclick: () => this.remove() }, t("skipDuplicate")));
    this.render();
  }

  /** The deliberate choice: attach the same file again (the server records it). */
  uploadAnyway() {
    if (this.state !== "duplicate") return;
    this.upload.options.metadata.allow_duplicate = "1";
    this._send();
  }

  _onProgress(sent, total) {
    this.statusOverride = null;
    this.bytesSent = sent;
    this.bytesTotal = total;
    this.speed = this.meter.sample(sent);
    if (this.upload && this.upload.url) this.uploadUrl = this.upload.url;
    this.render();
  }

  _onSuccess() {
    this.uploadUrl = this.upload.url;
    this.bytesSent = this.bytesTotal;
    const detail = { uploadUrl: this.uploadUrl, fileName: this.file.name, size: this.file.size, sha256: this.sha256 };
    this.app.root.dispatchEvent(new CustomEvent("upload:complete", { detail, bubbles: true }));
    if (this.app.config.statusUrlTemplate) {
      this.state = "processing";
      this.render();
      this._poll();
    } else {
      this.state = "done";
      this.render();
    }
  }

  _onError(err) {
    if (serverErrorCode(err) === "duplicate_slide" && !this.upload.options.metadata.allow_duplicate) {
      // Another upload of the same file finished after our check: show the same choice.
      this._findDuplicates().then((slides) => {
        if (slides.length) this._showDuplicate(slides);
        else this._onErrorShown(err);
      });
      return;
    }
    this._onErrorShown(err);
  }

  _onErrorShown(err) {
    const response = err && err.originalResponse;
    const wait = waitAdvice(err);
    if (wait && this.state === "uploading") {
      this._waitAndResume(wait);
      return;
    }
    this.errorStatus = response ? response.getStatus() : null;
    this.error = serverErrorMessage(err) || (response ? this.t("failed") : this.t("networkError"));
    this.state = "error";
    this.render();
  }

  /** Show why the server said "not now", then resume (HEAD first, so nothing is sent twice). */
  _waitAndResume(wait) {
    this.state = "waiting";
    this.waits += 1;
    this.errorStatus = null;
    const storage = STORAGE_CODES.has(wait.code);
    this.error = wait.message || (storage ? this.t("storageWaiting") : this.t("serverBusy"));
    this.waitUntil = Date.now() + wait.seconds * 1000;
    this.render();
    clearTimeout(this.waitTimer);
    this.waitTimer = setTimeout(() => {
      this.waitTimer = null;
      if (this.state !== "waiting") return;
      this.state = "uploading";
      this.render();
      this.upload.start();
    }, wait.seconds * 1000);
  }

  async _poll() {
    const template = this.app.config.statusUrlTemplate;
    const uploadId = (this.uploadUrl || "").replace(/\/+$/, "").split("/").pop();
    const url = template
      .replace("{uploadId}", encodeURIComponent(uploadId))
      .replace("{uploadUrl}", encodeURIComponent(this.uploadUrl || ""));
    let delay = 1000;
    const deadline = Date.now() + 30 * 60 * 1000;
    while (this.state === "processing" && Date.now() < deadline) {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) {
          const json = await response.json();
          const status = String(json.status || "").toLowerCase();
          this.serverStatus = status;
          this.serverMessage = typeof json.message === "string" ? json.message : null;
          if (TERMINAL_OK.has(status)) {
            this.state = "done";
          } else if (TERMINAL_FAIL.has(status)) {
            this.state = "error";
            this.error = (json.error && json.error.message) || json.message || this.t("status_failed");
          }
          this.render();
        }
      } catch (e) {
        /* transient: keep polling */
      }
      if (this.state !== "processing") break;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 1.5, 10000);
    }
  }

  pause() {
    if (!(this.state === "uploading" || this.state === "waiting") || !this.upload) return;
    clearTimeout(this.waitTimer);
    this.waitTimer = null;
    this.upload.abort(false);
    this.state = "paused";
    this.render();
  }

  resume() {
    if (!this.upload || !(this.state === "paused" || (this.state === "error" && this.sha256 && !this._isFinalError()))) return;
    this.state = "uploading";
    this.error = null;
    this.errorStatus = null;
    this.meter.reset(this.bytesSent);
    this.render();
    this.upload.start();
  }

  _isFinalError() {
    // 4xx (quota exceeded, too large, forbidden) will not succeed by retrying.
    return this.errorStatus !== null && this.errorStatus >= 400 && this.errorStatus < 500 && this.errorStatus !== 409 && this.errorStatus !== 423;
  }

  remove() {
    clearTimeout(this.waitTimer);
    if (this.state === "hashing") this.app.hasher.cancel(this.id);
    if (this.upload && this.upload.url && ["uploading", "paused", "waiting", "error"].includes(this.state)) {
      // Removed for good: terminate it on the server too (tus DELETE), which releases its quota reservation.
      this.upload.abort(true).catch(() => {});
    } else if (this.upload && (this.state === "uploading" || this.state === "paused")) {
      this.upload.abort(false);
    }
    this.state = "removed";
    this.el.remove();
    this.app.items = this.app.items.filter((item) => item !== this);
  }

  _statusText() {
    const t = this.t;
    const pct = (v) => Math.floor(v * 100);
    switch (this.state) {
      case "queued": return t("queued");
      case "hashing": return t("verifying", { percent: pct(this.file.size ? this.hashLoaded / this.file.size : 1) });
      case "uploading": {
        if (this.statusOverride) return this.statusOverride;
        const percent = pct(this.bytesTotal ? this.bytesSent / this.bytesTotal : 0);
        if (!this.speed || this.speed <= 0) return t("uploadingNoEstimate", { percent });
        return t("uploading", {
          percent,
          speed: formatRate(this.speed),
          remaining: formatDuration((this.bytesTotal - this.bytesSent) / this.speed, t),
        });
      }
      case "paused": return t("paused", { percent: pct(this.bytesTotal ? this.bytesSent / this.bytesTotal : 0) });
      case "waiting": return `${this.error} ${t("retryingAt", { time: new Date(this.waitUntil).toLocaleTimeString() })}`;
      case "processing":
        if (this.serverStatus === "storing" && this.serverMessage) return this.serverMessage;
        return this.serverStatus ? t(`status_${this.serverStatus}`) : t("processing");
      case "done": return t("done");
      case "error": return this.error || t("failed");
      case "duplicate": {
        const first = (this.duplicates || [])[0] || {};
        return t("duplicate", { label: first.label || "", filename: first.filename || "" });
      }
      default: return "";
    }
  }

  render() {
    const fraction =
      this.state === "hashing" ? (this.file.size ? this.hashLoaded / this.file.size : 1)
        : this.bytesTotal ? this.bytesSent / this.bytesTotal : 0;
    const percent = Math.round(Math.min(1, Math.max(0, fraction)) * 1000) / 10;
    this.fill.style.width = `${percent}%`;
    this.bar.setAttribute("aria-valuenow", String(percent));
    this.el.dataset.state = this.state;
    this.statusEl.textContent = this._statusText();
    this.pauseBtn.hidden = !(this.state === "uploading" || this.state === "waiting");
    this.resumeBtn.hidden = !(this.state === "paused" || (this.state === "error" && this.sha256 && !this._isFinalError()));
    this.removeBtn.hidden = this.state === "uploading" || this.state === "processing";
    this.dupEl.hidden = this.state !== "duplicate";
  }
}

class UploadApp {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.t = makeTranslator(config.i18n, UPLOAD_STRINGS);
    this.headers = { ...(config.headers || {}) };
    if (config.csrfToken && !Object.keys(this.headers).some((k) => k.toLowerCase() === "x-csrftoken")) {
      this.headers["X-CSRFToken"] = config.csrfToken;
    }
    this.hasher = new HashQueue(config.workerUrl || defaultWorkerUrl());
    this.items = [];
    this._build();
  }

  _build() {
    const t = this.t;
    this.root.classList.add("ph-upload");
    this.input = h("input", {
      type: "file", multiple: true, class: "ph-offscreen", tabindex: "-1", "aria-hidden": "true",
      onchange: () => {
        this.addFiles(this.input.files);
        this.input.value = "";
      },
    });
    const pick = h("button", { type: "button", class: "ph-btn ph-btn-primary", onclick: () => this.input.click() }, icon("upload"), h("span", {}, t("chooseFiles")));
    this.zone = h("div", { class: "ph-drop" },
      h("span", { class: "ph-drop-text" }, t("dropHere")),
      h("span", { class: "ph-drop-or" }, t("or")),
      pick,
      this.input);
    this.list = h("ul", { class: "ph-upload-list" });
    this.root.replaceChildren(this.zone, this.list);

    const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
    this.zone.addEventListener("dragenter", (e) => { if (hasFiles(e)) { e.preventDefault(); this.zone.classList.add("is-over"); } });
    this.zone.addEventListener("dragover", (e) => { if (hasFiles(e)) { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; this.zone.classList.add("is-over"); } });
    this.zone.addEventListener("dragleave", (e) => { if (!this.zone.contains(e.relatedTarget)) this.zone.classList.remove("is-over"); });
    this.zone.addEventListener("drop", (e) => {
      e.preventDefault();
      this.zone.classList.remove("is-over");
      if (e.dataTransfer && e.dataTransfer.files) this.addFiles(e.dataTransfer.files);
    });
    // A file dropped next to the zone must not make the browser navigate away from the page.
    window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
    window.addEventListener("drop", (e) => { if (hasFiles(e)) e.preventDefault(); });
  }

  /** @param {FileList|File[]} files */
  addFiles(files) {
    const added = [];
    for (const file of Array.from(files || [])) {
      const item = new UploadItem(this, file);
      this.items.push(item);
      this.list.append(item.el);
      added.push(item);
      item.start();
    }
    return added.map((item) => item.id);
  }
}

function boot() {
  const root = document.getElementById("upload-app");
  if (!root) return;
  const config = readJsonConfig("upload-config") || {};
  const app = new UploadApp(root, config);
  window.pathologyUploader = {
    app,
    get uploads() { return app.items.map((item) => item.snapshot()); },
    addFiles: (files) => app.addFiles(files),
    pause: (id) => app.items.find((i) => i.id === id)?.pause(),
    resume: (id) => app.items.find((i) => i.id === id)?.resume(),
    uploadAnyway: (id) => app.items.find((i) => i.id === id)?.uploadAnyway(),
  };
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
