// Small DOM helpers. Everything is built with createElement and textContent:
// no HTML string from data is ever parsed, so nothing the API returns can
// inject markup. The CSP forbids inline style, so looks come from classes.

/** h('button', {class: 'primary', onclick: fn}, 'Save') */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value' || name === 'checked' || name === 'selected' || name === 'disabled') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A unique id for label/control pairs. */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field. `name` is the API field name: errors[].field from
 * the server are shown under the field whose name matches.
 * control: an element (input/select/textarea) or a function (id) => element.
 */
export function field(label, name, control, hint) {
  const id = nextId(name.replace(/[^a-z0-9]/gi, '-'));
  const input = typeof control === 'function' ? control(id) : control;
  input.id = input.id || id;
  if (!input.name && input.tagName !== 'DIV') input.name = name;
  const hintId = hint ? `${input.id}-hint` : null;
  const errorId = `${input.id}-error`;
  input.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h('div', { class: 'field', dataset: { field: name } },
    h('label', { for: input.id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true }));
}

/** Clears every field error and the form's general error in `root`. */
export function clearErrors(root) {
  for (const p of root.querySelectorAll('.field-error')) {
    p.textContent = '';
    p.hidden = true;
  }
  for (const el of root.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const general = root.querySelector('.form-error');
  if (general) { general.textContent = ''; general.hidden = true; }
}

/**
 * Shows an API error in `root`: each errors[] entry next to the field it
 * names (matching data-field, or its first segment: "scopes[2]" → "scopes"),
 * the rest (and the problem's detail) in the form's general error box.
 */
export function showError(root, error) {
  clearErrors(root);
  const rest = [];
  for (const item of error.errors || []) {
    const box = findField(root, item.field);
    if (box) {
      const p = box.querySelector('.field-error');
      p.textContent = item.message;
      p.hidden = false;
      const input = box.querySelector('input, select, textarea');
      if (input) input.setAttribute('aria-invalid', 'true');
    } else {
      rest.push(item.field ? `${item.field}: ${item.message}` : item.message);
    }
  }
  const general = root.querySelector('.form-error');
  const text = [error.errors?.length && !rest.length ? null : error.message, ...rest]
    .filter(Boolean).join(' — ');
  if (general && text) {
    general.textContent = text;
    general.hidden = false;
  } else if (text) {
    notify(text, 'error');
  }
  const firstBad = root.querySelector('[aria-invalid="true"]');
  if (firstBad) firstBad.focus();
}

function findField(root, name) {
  if (!name) return null;
  const candidates = [name, name.split(/[.[]/)[0]];
  for (const candidate of candidates) {
    const box = root.querySelector(`[data-field="${CSS.escape(candidate)}"]`);
    if (box) return box;
  }
  return null;
}

/** The general error box of a form (place it once, near the submit button). */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

/** A short message in the page's live region. kind: info | success | error */
export function notify(text, kind = 'info') {
  const region = document.getElementById('notices');
  if (!region) return;
  const item = h('div', { class: ['notice', kind], role: kind === 'error' ? 'alert' : 'status' },
    h('span', {}, text),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×'));
  region.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 15000 : 6000);
}

/**
 * A modal confirmation built on <dialog> (focus is trapped and Escape
 * cancels natively). body: nodes; extra: optional form fields read back
 * on confirm. Resolves to false on cancel, or to {values} on confirm.
 */
export function confirmDialog({ title, body = [], confirmLabel = 'Confirm', danger = false, fields = [] }) {
  return new Promise((resolve) => {
    const titleId = nextId('dialog-title');
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { id: titleId }, title),
      ...body,
      ...fields,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', value: 'cancel', onclick: () => close(false) }, 'Cancel'),
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary', value: 'ok' }, confirmLabel)));
    const dialog = h('dialog', { 'aria-labelledby': titleId }, form);
    function close(result) {
      dialog.close();
      dialog.remove();
      resolve(result);
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const values = {};
      for (const el of form.querySelectorAll('input, select, textarea')) {
        values[el.name] = el.type === 'checkbox' ? el.checked : el.value;
      }
      close({ values });
    });
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); close(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'secondary copy' }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(typeof text === 'function' ? text() : text);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy';
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

/** Sets the page's title and heading; returns the main element, emptied. */
export function page(title, ...actions) {
  document.title = `${title} · keymint`;
  const main = document.getElementById('main');
  mount(main,
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1', id: 'page-title' }, title),
      h('div', { class: 'page-actions' }, ...actions)));
  return main;
}

/** A status word as a badge (never colour alone: the word is the text). */
export function badge(status) {
  return h('span', { class: ['badge', `badge-${status}`] }, status);
}
