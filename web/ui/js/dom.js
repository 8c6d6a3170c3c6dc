// Builds DOM nodes from data: text is always set as text, never parsed as
// HTML, so nothing the API returns can inject markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let uid = 0;
// A labelled control: <div><label for=id>text</label><control id=id></div>.
export function field(text, control) {
  const id = control.id || 'f' + ++uid;
  control.id = id;
  return h('div', {}, h('label', { for: id, text }), control);
}

export function table(headers, rows, caption) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'skip', text: caption }) : null,
      h('thead', {}, h('tr', {}, headers.map((x) =>
        h('th', { scope: 'col', class: x.cls || null, text: x.text || x })))),
      h('tbody', {}, rows)));
}
