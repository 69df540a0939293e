/**
 * Client for /api/v1/slides/<id>/annotations. Session cookie + CSRF header
 * (the page's <meta name="csrf-token">); edits send the version they are based
 * on as If-Match so the server can answer 409 instead of overwriting.
 */

import { fetchDecoded } from "./loader.js";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.body = body;
  }
}

function csrfToken() {
  const meta = document.querySelector("meta[name=csrf-token]");
  return meta ? meta.getAttribute("content") : "";
}

async function request(method, url, { body, version } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (version !== undefined && version !== null) headers["If-Match"] = `"${version}"`;
  const resp = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch (_) {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** Fires "saved" (detail: {slideId}) after every successful annotation write (the live session listens). */
export const annotationWrites = new EventTarget();

export class AnnotationApi {
  constructor(slideId) {
    this.slideId = slideId;
    this.base = `/api/v1/slides/${slideId}/annotations`;
  }

  _written(result) {
    annotationWrites.dispatchEvent(new CustomEvent("saved", { detail: { slideId: this.slideId } }));
    return result;
  }

  /** All live annotations (or those touching `bbox` = [x0, y0, x1, y1]). */
  listUrl(bbox = null) {
    return this.base + (bbox ? `?bbox=${bbox.join(",")}` : "");
  }

  list(bbox = null) {
    return request("GET", this.listUrl(bbox));
  }

  create(feature) {
    return request("POST", this.base, { body: feature }).then((r) => this._written(r));
  }

  update(id, version, feature) {
    return request("PATCH", `${this.base}/${id}`, { body: feature, version }).then((r) => this._written(r));
  }

  remove(id, version) {
    return request("DELETE", `${this.base}/${id}`, { version }).then((r) => this._written(r));
  }

  /**
   * May this user draw here? An empty create is refused before any change:
   * 403 when not allowed, 422 (missing geometry) when allowed. The server stays
   * the only place the rule lives.
   */
  async canCreate() {
    try {
      await request("POST", this.base, { body: {} });
      return true;
    } catch (err) {
      return err instanceof ApiError && err.status === 422;
    }
  }
}

/**
 * The slide's annotations as parallel requests for vertical strips of the slide
 * (bbox filter): the server's workers build the strips concurrently and the
 * browser parses each as it arrives. A shape crossing a strip edge comes in both
 * strips; the caller keeps the first copy (same id).
 * @returns {Promise<object>[]} one promise per strip, each a FeatureCollection or {failed: ApiError}
 */
export function fetchChunks(api, slide, strips = 4) {
  const w = Number(slide.width) || 0;
  const hgt = Number(slide.height) || 0;
  // Decoded in a worker (see loader.js); on the main thread only if workers are unavailable.
  const one = (bbox) => fetchDecoded(api.listUrl(bbox), () => api.list(bbox).catch((err) => ({ failed: err })));
  if (!(w > 0 && hgt > 0)) return [one(null)];
  const out = [];
  for (let k = 0; k < strips; k++) {
    const x0 = k === 0 ? -1e9 : Math.floor((w * k) / strips);
    const x1 = k === strips - 1 ? 1e12 : Math.floor((w * (k + 1)) / strips);
    out.push(one([x0, -1e9, x1, 1e12]));
  }
  return out;
}

let mePromise = null;
/** The logged-in user ({id, role, …}), fetched once per page. */
export function currentUser() {
  if (!mePromise) mePromise = request("GET", "/api/v1/me").catch(() => null);
  return mePromise;
}

let classesPromise = null;
export function annotationClasses() {
  if (!classesPromise) {
    classesPromise = request("GET", "/api/v1/annotation-classes")
      .then((d) => (d && Array.isArray(d.classes) ? d.classes : []))
      .catch(() => []);
  }
  return classesPromise;
}
