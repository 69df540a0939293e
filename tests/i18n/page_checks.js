// Runs in the page (Playwright evaluate): what a person sees, and how the layout holds.
// Returns {texts: [...visible text runs...], overflow: {scrollWidth, innerWidth}, overlaps: [...]}.
() => {
  const visible = (el) => {
    if (!el || !el.getClientRects().length) return false;
    // the body of a closed <details> keeps layout boxes in Chromium but is not shown
    const shut = el.closest('details:not([open])');
    if (shut && !el.closest('summary')) return false;
    if (el.checkVisibility && !el.checkVisibility({contentVisibilityAuto: true, opacityProperty: true,
                                                    visibilityProperty: true})) return false;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none' || Number(st.opacity) === 0) return false;
    return !(el.closest('[hidden], template, script, style, noscript'));
  };
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.nodeValue.replace(/\s+/g, ' ').trim();
    // <code> and translate="no" hold codes and verbatim data (error codes, audit records, file metadata).
    if (t && visible(n.parentElement) && !n.parentElement.closest('code, [translate=no]')) texts.push(t);
  }
  for (const el of document.querySelectorAll('[placeholder], [title], [aria-label], input[type=submit], input[type=button]')) {
    if (!visible(el) || el.closest('code, [translate=no]')) continue;
    for (const attr of ['placeholder', 'title', 'aria-label']) if (el.getAttribute(attr)) texts.push(el.getAttribute(attr).trim());
    if (el.matches('input[type=submit], input[type=button]') && el.value) texts.push(el.value.trim());
  }
  for (const sel of document.querySelectorAll('select')) {
    if (!visible(sel)) continue;
    for (const opt of sel.options) if (opt.text.trim()) texts.push(opt.text.trim());
  }
  texts.push(document.title);

  // Controls: visible buttons, inputs, links, selects; two whose boxes intersect (not nested) overlap.
  const controls = [];
  for (const el of document.querySelectorAll('button, input:not([type=hidden]), select, textarea, a[href]')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    controls.push({el, r});
  }
  const describe = (el) => {
    const id = el.getAttribute('data-testid') || el.id || el.getAttribute('name') || '';
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 30);
    return `${el.tagName.toLowerCase()}${id ? '[' + id + ']' : ''} "${text}"`;
  };
  const overlaps = [];
  const SLACK = 2;  // px: borders that touch are not an overlap
  for (let i = 0; i < controls.length; i++) {
    for (let j = i + 1; j < controls.length; j++) {
      const a = controls[i], b = controls[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (w > SLACK && h > SLACK) overlaps.push(`${describe(a.el)} overlaps ${describe(b.el)} (${Math.round(w)}×${Math.round(h)} px)`);
    }
  }
  return {texts, overflow: {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth}, overlaps};
}
