/**
 * Coalescing of view-state messages: while the presenter pans, OpenSeadragon reports a new view
 * on every animation frame (60/s); sending each would cost ~10 kB/s per follower. A Coalescer
 * sends at most one message per `interval` ms, always sends the latest value last (trailing
 * edge, so followers end exactly where the presenter stopped) and never repeats an unchanged one.
 *
 * Pure: the clock and the timer are injected so node's test runner can drive it.
 */
export class Coalescer {
  /**
   * @param {(value: any) => void} send
   * @param {{interval?: number, now?: () => number, setTimer?: Function, clearTimer?: Function, same?: Function}} [opts]
   */
  constructor(send, opts = {}) {
    this.send = send;
    this.interval = opts.interval ?? 120;
    this.now = opts.now ?? (() => Date.now());
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((id) => clearTimeout(id));
    this.same = opts.same ?? sameView;
    this.lastSentAt = -Infinity;
    this.lastSent = null;
    this.pending = null;
    this.timer = null;
  }

  /** A new value: sent now if the interval has passed, else kept (replacing any older pending). */
  push(value) {
    if (this.lastSent !== null && this.same(value, this.lastSent) && this.pending === null) return;
    this.pending = value;
    const wait = this.lastSentAt + this.interval - this.now();
    if (wait <= 0) {
      this.flush();
    } else if (this.timer === null) {
      this.timer = this.setTimer(() => { this.timer = null; this.flush(); }, wait);
    }
  }

  /** Send the pending value now (if any, and if it differs from the last one sent). */
  flush() {
    if (this.timer !== null) { this.clearTimer(this.timer); this.timer = null; }
    const value = this.pending;
    this.pending = null;
    if (value === null) return;
    if (this.lastSent !== null && this.same(value, this.lastSent)) return;
    this.lastSent = value;
    this.lastSentAt = this.now();
    this.send(value);
  }

  /** Forget what was sent (after a reconnect, the next value must go out even if unchanged). */
  reset() {
    if (this.timer !== null) { this.clearTimer(this.timer); this.timer = null; }
    this.pending = null;
    this.lastSent = null;
    this.lastSentAt = -Infinity;
  }
}

/** Views equal to what a follower can see: centre to 1e-6 of the slide, scale to 0.1 %, angle to 0.1°. */
export function sameView(a, b) {
  if (!a || !b) return a === b;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const x = a[k];
    const y = b[k];
    if (typeof x === "number" && typeof y === "number") {
      const tol = k === "x" || k === "y" ? 1e-6 : k === "rotation" ? 0.1 : Math.abs(x) * 1e-3 + 1e-9;
      if (Math.abs(x - y) > tol) return false;
    } else if (x !== y) return false;
  }
  return true;
}

/** Round a view to what matters on screen, which also keeps each message near 120 bytes. */
export function compactView(view) {
  const out = {};
  for (const [k, v] of Object.entries(view)) {
    if (v === null || v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    out[k] = k === "slideId" ? v : Number(v.toPrecision(k === "x" || k === "y" ? 7 : 5));
  }
  return out;
}
