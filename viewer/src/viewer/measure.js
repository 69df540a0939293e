/**
 * Pure helpers for magnification and scale bars, kept free of DOM/OSD so the
 * arithmetic is easy to reason about and test.
 */

/** Microns per pixel that a 40× objective scans at; used when only mpp is known. */
const MPP_AT_40X = 0.25;

/**
 * The slide's native magnification, objective-equivalent: derived from the pixel size
 * (40× ≙ 0.25 µm/px) whenever MPP is known, so "10×" means the same µm per screen pixel
 * on every scanner (and in deep links, figures and side-by-side sync); the scanner's
 * recorded objective power is used only without MPP. null: no honest magnification.
 * @param {{objectivePower?: number|null, mpp?: number|null}} slide
 * @returns {number|null}
 */
export function nativeMagnification(slide) {
  if (slide && slide.mpp > 0) return (MPP_AT_40X / Number(slide.mpp)) * 40;
  if (slide && slide.objectivePower > 0) return Number(slide.objectivePower);
  return null;
}

/** Preset magnifications offered, capped at what the scan resolves. */
export function magnificationPresets(native) {
  if (!native) return [];
  return [1, 2, 5, 10, 20, 40].filter((m) => m <= native * 1.0001);
}

/** Format a magnification like "2.5×" or "20×". */
export function formatMagnification(mag) {
  if (!Number.isFinite(mag)) return "–";
  if (mag >= 9.95) return `${Math.round(mag)}×`;
  return `${mag.toFixed(1).replace(/\.0$/, "")}×`;
}

/**
 * Choose a round scale-bar length (1, 2 or 5 × 10^k µm) no longer than maxPx.
 * @param {number} micronsPerScreenPx
 * @param {number} maxPx
 * @returns {{px: number, label: string}|null}
 */
export function scaleBarFor(micronsPerScreenPx, maxPx = 140) {
  if (!(micronsPerScreenPx > 0) || !Number.isFinite(micronsPerScreenPx)) return null;
  const maxMicrons = micronsPerScreenPx * maxPx;
  const exponent = Math.floor(Math.log10(maxMicrons));
  let nice = 0;
  for (const step of [5, 2, 1]) {
    const candidate = step * 10 ** exponent;
    if (candidate <= maxMicrons) {
      nice = candidate;
      break;
    }
  }
  if (!nice) return null;
  const px = nice / micronsPerScreenPx;
  const label =
    nice >= 1000 ? `${+(nice / 1000).toPrecision(3)} mm` : `${+nice.toPrecision(3)} µm`;
  return { px, label };
}

/** Normalise an angle to (-180, 180]. */
export function normalizeAngle(deg) {
  let a = ((Number(deg) % 360) + 360) % 360;
  if (a > 180) a -= 360;
  return a;
}
