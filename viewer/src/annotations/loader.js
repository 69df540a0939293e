/**
 * Download and decode annotation lists off the main thread.
 *
 * 10,000 polygons of 100 vertices are ~22 MB of GeoJSON. Parsing that and
 * copying the coordinates into typed arrays on the main thread would freeze the
 * viewer for a second or more; a worker does it instead and hands back a few
 * flat typed arrays (transferred, not copied) plus the small per-shape
 * properties. Shapes then use subarray views into those buffers.
 *
 * The worker is made from a Blob of `workerMain`'s source (the CSP allows
 * `worker-src 'self' blob:`), so it ships inside the viewer bundle. `workerMain`
 * must therefore not use anything from outside its own body.
 */

function workerMain() {
  self.onmessage = async (event) => {
    const { body, status, times } = event.data;
    const now = () => performance.timeOrigin + performance.now();
    times.start = now();
    try {
      let data = null;
      try { data = JSON.parse(new TextDecoder().decode(body)); } catch (_) { data = null; }
      times.parsed = now();
      if (!data) {
        self.postMessage({ ok: false, status, body: null });
        return;
      }
      const feats = Array.isArray(data.features) ? data.features : [];
      // First pass: sizes, so every array is allocated once.
      let nCoords = 0, nRings = 0, nParts = 0;
      const norm = [];
      for (const f of feats) {
        const g = f && f.geometry;
        let kind = null, parts = null;
        if (!g) { norm.push(null); continue; }
        const c = g.coordinates;
        if (g.type === "Point") { kind = 0; parts = [[[c]]]; }
        else if (g.type === "MultiPoint") { kind = 0; parts = c.map((p) => [[p]]); }
        else if (g.type === "LineString") { kind = 1; parts = [[c]]; }
        else if (g.type === "Polygon") { kind = 2; parts = [c]; }
        else if (g.type === "MultiPolygon") { kind = 2; parts = c; }
        if (kind === null) { norm.push(null); continue; }
        norm.push([kind, parts]);
        for (const rings of parts) {
          nParts += 1;
          for (const ring of rings) { nRings += 1; nCoords += 2 * ring.length; }
        }
      }
      const coords = new Float64Array(nCoords);
      const ringEnd = new Int32Array(nRings);
      const partEnd = new Int32Array(nParts);
      const featEnd = new Int32Array(norm.length);
      const kinds = new Uint8Array(norm.length);
      const boxes = new Float64Array(4 * norm.length);
      const props = new Array(norm.length);
      let ci = 0, ri = 0, pi = 0;
      for (let i = 0; i < norm.length; i++) {
        const f = feats[i];
        props[i] = f ? { id: f.id, properties: f.properties || {} } : null;
        const entry = norm[i];
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        if (entry) {
          const [kind, parts] = entry;
          kinds[i] = kind;
          for (const rings of parts) {
            for (const ring of rings) {
              let n = ring.length;
              // Polygon rings are stored without the repeated closing position.
              if (kind === 2 && n > 1 && ring[0][0] === ring[n - 1][0] && ring[0][1] === ring[n - 1][1]) n -= 1;
              for (let k = 0; k < n; k++) {
                const x = +ring[k][0], y = +ring[k][1];
                coords[ci++] = x;
                coords[ci++] = y;
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
              }
              ringEnd[ri++] = ci;
            }
            partEnd[pi++] = ri;
          }
        } else {
          kinds[i] = 255;
        }
        featEnd[i] = pi;
        boxes[4 * i] = x0; boxes[4 * i + 1] = y0; boxes[4 * i + 2] = x1; boxes[4 * i + 3] = y1;
      }
      times.decoded = now();
      const out = { ok: true, coords, ringEnd, partEnd, featEnd, kinds, boxes, props, times };
      self.postMessage(out, [coords.buffer, ringEnd.buffer, partEnd.buffer, featEnd.buffer, kinds.buffer, boxes.buffer]);
    } catch (err) {
      self.postMessage({ ok: false, status: 0, body: { error: { message: String(err && err.message ? err.message : err) } } });
    }
  };
}

let workerUrl = null;
function makeWorker() {
  if (!workerUrl) {
    const src = `(${workerMain.toString()})();`;
    workerUrl = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  }
  return new Worker(workerUrl);
}

const KINDS = ["point", "line", "polygon"];

/**
 * Turn a decoded batch into shape records (geometry as views into the shared buffers).
 * @returns {{id, properties, geom, bbox, nverts}[]}
 */
export function shapesOfBatch(batch) {
  const out = [];
  const { coords, ringEnd, partEnd, featEnd, kinds, boxes, props } = batch;
  let p0 = 0;
  for (let i = 0; i < featEnd.length; i++) {
    const p1 = featEnd[i];
    if (kinds[i] !== 255 && props[i]) {
      const parts = [];
      let nverts = 0;
      for (let p = p0; p < p1; p++) {
        const r0 = p === 0 ? 0 : partEnd[p - 1];
        const rings = [];
        for (let r = r0; r < partEnd[p]; r++) {
          const c0 = r === 0 ? 0 : ringEnd[r - 1];
          rings.push(coords.subarray(c0, ringEnd[r]));
          nverts += (ringEnd[r] - c0) / 2;
        }
        parts.push(rings);
      }
      out.push({
        id: props[i].id,
        properties: props[i].properties,
        geom: { kind: KINDS[kinds[i]], parts },
        bbox: [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]],
        nverts,
      });
    }
    p0 = p1;
  }
  return out;
}

/**
 * GET `url` and decode it in a worker; resolves with a decoded batch, or
 * {failed: {status, code, message}}. The request itself is sent from the page at
 * once (the worker starts meanwhile) and the body is handed over as a transferred
 * buffer, so neither worker start-up nor a copy delays the download.
 * Falls back to `fallback()` (main-thread fetch and parse) when workers cannot be created.
 */
export function fetchDecoded(url, fallback) {
  const now = () => performance.timeOrigin + performance.now();
  let worker;
  try {
    worker = makeWorker();   // returns at once; the worker boots while the download runs
  } catch (_) {
    return fallback();
  }
  const times = { sent: now() };
  const download = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  return download.then(async (resp) => {
    times.headers = now();
    if (!resp.ok) {
      worker.terminate();
      let data = null;
      try { data = await resp.json(); } catch (_) { data = null; }
      const err = (data && data.error) || {};
      return { failed: { status: resp.status, code: err.code || null, message: err.message || `HTTP ${resp.status}` } };
    }
    const body = await resp.arrayBuffer();
    times.body = now();
    return decodeIn(worker, body, resp.status, times, fallback);
  }, () => {
    worker.terminate();
    return { failed: { status: 0, code: null, message: "network error" } };
  });
}

function decodeIn(worker, body, status, times, fallback) {
  return new Promise((resolve) => {
    worker.onmessage = (event) => {
      worker.terminate();
      const msg = event.data;
      if (msg.ok) resolve(msg);
      else {
        const err = (msg.body && msg.body.error) || {};
        resolve({ failed: { status: msg.status, code: err.code || null, message: err.message || `HTTP ${msg.status}` } });
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      worker.terminate();
      resolve(fallback());
    };
    worker.postMessage({ body, status, times }, [body]);
  });
}
