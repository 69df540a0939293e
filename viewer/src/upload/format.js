/** Human-readable sizes, rates and durations for upload progress. */

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function formatRate(bytesPerSecond) {
  return `${(bytesPerSecond / 1e6).toFixed(bytesPerSecond < 1e7 ? 2 : 1)} MB/s`;
}

/** @param {number} seconds @param {(k:string,p?:object)=>string} t */
export function formatDuration(seconds, t) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("secondsLeft", { s });
  if (s < 3600) return t("minutesLeft", { m: Math.floor(s / 60), s: s % 60 });
  return t("hoursLeft", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}

/**
 * Exponentially smoothed transfer rate: raw per-chunk rates jump around too much
 * to base a remaining-time estimate on.
 */
export class RateMeter {
  constructor(smoothing = 0.3, minIntervalMs = 250) {
    this.smoothing = smoothing;
    this.minIntervalMs = minIntervalMs;
    this.reset();
  }

  reset(bytes = 0) {
    this.rate = null;
    this.lastBytes = bytes;
    this.lastTime = null;
  }

  /** @returns {number|null} bytes per second */
  sample(bytes, now = performance.now()) {
    if (this.lastTime === null) {
      this.lastTime = now;
      this.lastBytes = bytes;
      return this.rate;
    }
    const dt = now - this.lastTime;
    if (dt < this.minIntervalMs) return this.rate;
    const instant = ((bytes - this.lastBytes) * 1000) / dt;
    this.rate = this.rate === null ? instant : this.smoothing * instant + (1 - this.smoothing) * this.rate;
    this.lastTime = now;
    this.lastBytes = bytes;
    return this.rate;
  }
}
