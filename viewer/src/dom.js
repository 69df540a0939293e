/**
 * Tiny DOM helpers shared by the viewer and uploader.
 *
 * The pages run under a CSP without 'unsafe-inline', so markup is built with
 * createElement (never innerHTML with style attributes) and configuration comes
 * from non-executed JSON <script> blocks.
 */

/**
 * Create an element. Attributes starting with "on" become listeners; `class`
 * sets className; `true` makes a boolean attribute; null/false are skipped.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node|string|number|null|false|Array)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/**
 * Read a JSON configuration block (`<script type="application/json">`).
 * Such blocks are data, not code, so they are allowed by `script-src 'self'`.
 * @param {string} id
 * @returns {any|null}
 */
export function readJsonConfig(id) {
  const node = document.getElementById(id);
  if (!node) return null;
  try {
    return JSON.parse(node.textContent || "{}");
  } catch (err) {
    console.error(`Invalid JSON in #${id}`, err);
    return null;
  }
}

/**
 * Build a translator over server-provided strings with English fallbacks, so a
 * missing key degrades to readable English rather than a blank button.
 * `{name}` placeholders are filled from `params`.
 * @param {Record<string,string>|undefined} strings
 * @param {Record<string,string>} fallbacks
 * @returns {(key: string, params?: Record<string, any>) => string}
 */
export function makeTranslator(strings, fallbacks) {
  const table = { ...fallbacks, ...(strings || {}) };
  return (key, params) => {
    const template = table[key] ?? key;
    if (!params) return template;
    return template.replace(/\{(\w+)\}/g, (m, name) =>
      params[name] === undefined ? m : String(params[name]),
    );
  };
}

/**
 * Trailing-edge debounce: URL updates and similar side effects should happen
 * once the view settles, not on every animation frame.
 * @template {(...args: any[]) => void} F
 * @param {F} fn
 * @param {number} wait
 * @returns {F & {flush: () => void}}
 */
export function debounce(fn, wait) {
  let timer = null;
  let lastArgs = [];
  const debounced = (...args) => {
    lastArgs = args;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn(...lastArgs);
    }, wait);
  };
  debounced.flush = () => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
      fn(...lastArgs);
    }
  };
  return debounced;
}
