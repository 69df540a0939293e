/**
 * Stroke icons as SVG built in JS: no icon font or image requests, and SVG
 * presentation attributes are not affected by the CSP's style-src.
 */
const SVG_NS = "http://www.w3.org/2000/svg";

const PATHS = {
  minus: "M5 12h14",
  plus: "M12 5v14M5 12h14",
  home: "M3 11l9-8 9 8M5 9.5V20h14V9.5",
  "rotate-left": "M3 4v6h6M3.6 10A9 9 0 1 1 6 17.5",
  "rotate-right": "M21 4v6h-6M20.4 10A9 9 0 1 0 18 17.5",
  fullscreen: "M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5",
  link: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  panel: "M3 4h18v16H3zM15 4v16",
  pause: "M8 5v14M16 5v14",
  play: "M7 4l13 8-13 8z",
  close: "M6 6l12 12M18 6L6 18",
  upload: "M12 16V4M6 10l6-6 6 6M4 20h16",
};

/** @param {keyof typeof PATHS} name */
export function icon(name) {
  return strokeIcon(PATHS[name] || "", `ph-icon ph-icon-${name}`);
}

/** A 24×24 stroke icon drawing the SVG path `d` (shared with annotations/tool-icons.js). */
export function strokeIcon(d, className = "ph-icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", d);
  svg.append(path);
  return svg;
}
