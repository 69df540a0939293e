/**
 * Brightness / contrast / gamma applied by the browser compositor.
 *
 * CSS has brightness() and contrast() but no gamma, so one SVG filter with two
 * feComponentTransfer stages (linear, then gamma) is defined in the page and
 * referenced from the drawer canvases with `filter: url(#id)`. That keeps tile
 * pixels untouched (no re-decoding, no per-tile work) and works for both panes.
 */
const SVG_NS = "http://www.w3.org/2000/svg";

export const NEUTRAL = Object.freeze({ brightness: 0, contrast: 0, gamma: 1 });

export class Adjustments {
  /** @param {string} id unique id for the filter element */
  constructor(id = "ph-adjust") {
    this.id = id;
    this.values = { ...NEUTRAL };
    this.canvases = new Set();
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "ph-filter-defs");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const filter = document.createElementNS(SVG_NS, "filter");
    filter.setAttribute("id", id);
    // Default linearRGB would shift mid-tones even at neutral settings.
    filter.setAttribute("color-interpolation-filters", "sRGB");
    this.linear = this._stage(filter, "linear");
    this.gamma = this._stage(filter, "gamma");
    svg.append(filter);
    document.body.append(svg);
    this.svg = svg;
    this._apply();
  }

  _stage(filter, type) {
    const transfer = document.createElementNS(SVG_NS, "feComponentTransfer");
    const funcs = ["feFuncR", "feFuncG", "feFuncB"].map((name) => {
      const fn = document.createElementNS(SVG_NS, name);
      fn.setAttribute("type", type);
      transfer.append(fn);
      return fn;
    });
    filter.append(transfer);
    return funcs;
  }

  /** Register a canvas (e.g. an OSD drawer canvas) to be filtered. */
  attach(canvas) {
    if (!canvas) return;
    this.canvases.add(canvas);
    this._styleCanvas(canvas);
  }

  detach(canvas) {
    this.canvases.delete(canvas);
    if (canvas) canvas.style.filter = "";
  }

  /** @param {Partial<typeof NEUTRAL>} values */
  set(values) {
    for (const key of Object.keys(NEUTRAL)) {
      if (values[key] !== undefined && Number.isFinite(Number(values[key]))) {
        this.values[key] = Number(values[key]);
      }
    }
    this._apply();
  }

  get() {
    return { ...this.values };
  }

  isNeutral() {
    return (
      this.values.brightness === 0 && this.values.contrast === 0 && this.values.gamma === 1
    );
  }

  _apply() {
    const { brightness, contrast, gamma } = this.values;
    // contrast in [-100, 100]: negative flattens towards grey, positive steepens up to 3×.
    const slope = contrast >= 0 ? 1 + contrast / 50 : 1 + contrast / 100;
    // brightness in [-100, 100] shifts by up to half the range; the pivot keeps mid-grey fixed.
    const intercept = brightness / 200 + 0.5 * (1 - slope);
    for (const fn of this.linear) {
      fn.setAttribute("slope", String(slope));
      fn.setAttribute("intercept", String(intercept));
    }
    const exponent = 1 / Math.max(0.05, gamma);
    for (const fn of this.gamma) {
      fn.setAttribute("amplitude", "1");
      fn.setAttribute("exponent", String(exponent));
      fn.setAttribute("offset", "0");
    }
    for (const canvas of this.canvases) this._styleCanvas(canvas);
  }

  _styleCanvas(canvas) {
    // Skip the filter entirely when neutral: compositing through it costs GPU/CPU time.
    canvas.style.filter = this.isNeutral() ? "" : `url(#${this.id})`;
  }
}
