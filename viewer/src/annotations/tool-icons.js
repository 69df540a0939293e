/**
 * Stroke icons of the annotation tools (toolbar and panel), built as SVG in JS by ../icons.js:
 * no icon font or image requests, and SVG attributes are not affected by the CSP's style-src.
 */
import { strokeIcon } from "../icons.js";

const TOOL_ICONS = {
  select: "M5 3l13 9-6 1.5L9 20z",
  point: "M12 12m-3 0a3 3 0 1 0 6 0a3 3 0 1 0-6 0",
  line: "M4 20L20 4M4 20l3-1M4 20l1-3M20 4l-3 1M20 4l-1 3",
  rectangle: "M4 6h16v12H4z",
  ellipse: "M12 6c5 0 9 2.7 9 6s-4 6-9 6-9-2.7-9-6 4-6 9-6z",
  polygon: "M5 8l7-5 7 6-3 11H7z",
  freehand: "M4 16c3-8 6 4 9-3s5-5 7-1",
  undo: "M9 14L4 9l5-5M4 9h11a5 5 0 0 1 0 10h-3",
  redo: "M15 14l5-5-5-5M20 9H9a5 5 0 0 0 0 10h3",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
};

export function toolIcon(name) {
  return strokeIcon(TOOL_ICONS[name] || "");
}
