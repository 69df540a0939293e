/**
 * The annotation toolbar: one button per drawing tool, the class new shapes get, undo and redo.
 * It shows state and reports clicks; the controller decides (see controller.js).
 */
import { h } from "../dom.js";
import { toolIcon } from "./tool-icons.js";

/** [tool, label key, keyboard shortcut] */
export const TOOLS = [
  ["select", "toolSelect", "v"],
  ["point", "toolPoint", "p"],
  ["line", "toolLine", "l"],
  ["rectangle", "toolRectangle", "r"],
  ["ellipse", "toolEllipse", "e"],
  ["polygon", "toolPolygon", "g"],
  ["freehand", "toolFreehand", "f"],
];

export function isTool(name) {
  return TOOLS.some(([n]) => n === name);
}

/** The tool a (lower-case) key selects, or null. */
export function toolOfKey(key) {
  const tool = TOOLS.find(([, , k]) => k === key);
  return tool ? tool[0] : null;
}

export class AnnotationToolbar {
  /**
   * @param {{t: Function, tool: string, onTool: (name: string) => void, onClass: (name: string|null) => void,
   *          onUndo: () => void, onRedo: () => void}} opts
   */
  constructor(opts) {
    const t = opts.t;
    this.toolButtons = {};
    const buttons = TOOLS.map(([name, key]) => {
      const label = t(key);
      const btn = h("button", {
        type: "button", class: "ph-btn ph-ann-tool", title: label, "aria-label": label,
        "data-tool": name, "aria-pressed": name === opts.tool ? "true" : "false",
        onclick: () => opts.onTool(name),
      }, toolIcon(name));
      this.toolButtons[name] = btn;
      return btn;
    });
    this.classSelect = h("select", {
      class: "ph-ann-class-current", "aria-label": t("annotationClass"), title: t("annotationClass"),
      onchange: () => opts.onClass(this.classSelect.value || null),
    });
    const mk = (name, key, fn) => h("button", {
      type: "button", class: "ph-btn", title: t(key), "aria-label": t(key), "data-action": name, onclick: fn,
    }, toolIcon(name));
    this.undoBtn = mk("undo", "undo", () => opts.onUndo());
    this.redoBtn = mk("redo", "redo", () => opts.onRedo());
    this.el = h("div", { class: "ph-group ph-ann-tools", role: "group", "aria-label": t("annotationTools"), hidden: true },
      ...buttons, this.classSelect, this.undoBtn, this.redoBtn);
  }

  /** Mark `name` as the pressed tool. */
  showTool(name) {
    for (const [n, btn] of Object.entries(this.toolButtons)) {
      btn.setAttribute("aria-pressed", n === name ? "true" : "false");
      btn.classList.toggle("is-on", n === name);
    }
  }

  /** Hidden unless the user may draw on the active pane; the class list follows the palette. */
  update({ canEdit, palette, currentClass, canUndo, canRedo }) {
    this.el.hidden = !canEdit;
    if (this.classSelect.options.length !== palette.length) {
      this.classSelect.replaceChildren(...palette.map((c) => h("option", { value: c.name }, c.name)));
    }
    if (currentClass) this.classSelect.value = currentClass;
    this.undoBtn.disabled = !canUndo;
    this.redoBtn.disabled = !canRedo;
  }
}
