// Keys: search, filters, "load more" on the cursor, bulk revoke.

import { api } from '../api.js';
import { pager } from '../pager.js';
import { h, field, page, badge, confirmDialog, notify, showError, formError } from '../dom.js';
import { when, relative } from '../format.js';
import * as session from '../session.js';
import { go } from '../app.js';
import { scopesAbove } from './create.js';

const COLUMNS = ['Name', 'Start', 'Owner', 'Scopes', 'Status', 'Created', 'Expires', 'Last used', 'Tokens'];

export async function render(_params, query) {
  const current = session.current();
  const canWrite = session.can('admin:keys:write', current);
  const canCreate = canWrite || session.can('keys:self', current);
  // keys:self revokes keys it owns, which are the only ones it lists.
  const canRevoke = canCreate;
  const main = page(session.keyAccess(current) === 'own' ? 'My keys' : 'Keys',
    canCreate ? h('a', { class: 'button-link primary', href: '#/keys/new' }, 'Create key') : null);

  const q = h('input', { type: 'search', value: query.q || '', maxlength: 100, placeholder: 'name, id or owner' });
  const status = h('select', {},
    ...[['', 'Any status'], ['active', 'Active'], ['expired', 'Expired'], ['revoked', 'Revoked']]
      .map(([value, label]) => h('option', { value, selected: (query.status || '') === value }, label)));
  const owner = h('input', { type: 'text', value: query.owner || '', maxlength: 200 });
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter keys' },
    grow(field('Search', 'q', q)),
    field('Status', 'status', status),
    session.keyAccess(current) === 'all' ? field('Owner', 'owner', owner) : null,
    h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
    formError());
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (q.value.trim()) params.set('q', q.value.trim());
    if (status.value) params.set('status', status.value);
    if (owner.value.trim()) params.set('owner', owner.value.trim());
    const qs = params.toString();
    go(`/keys${qs ? `?${qs}` : ''}`);
  });
  status.addEventListener('change', () => filters.requestSubmit());

  const selected = new Set();
  const revokeButton = h('button', { type: 'button', class: 'danger', disabled: true }, 'Revoke selected');
  const selectionText = h('span', { class: 'hint', 'aria-live': 'polite' }, '');
  const bulk = canRevoke ? h('div', { class: 'actions bulk' }, revokeButton, selectionText) : null;
  const tbody = h('tbody');
  const selectAll = canRevoke ? h('input', { type: 'checkbox', 'aria-label': 'Select all shown keys' }) : null;
  const table = h('table', { class: 'stack' },
    h('caption', { class: 'visually-hidden' }, 'API keys'),
    h('thead', {}, h('tr', {}, canRevoke ? h('th', { scope: 'col' }, selectAll) : null,
      ...COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const list = pager({
    into: tbody,
    fetchPage: (cursor) => api('GET', '/keys', {
      query: { q: query.q, status: query.status, owner: query.owner, limit: 50, cursor },
    }),
    render: (key) => row(key),
    onError: (error) => showError(filters, error),
    noun: ['key', 'keys'],
    emptyText: 'No keys match.',
    afterLoad: () => updateSelection(),
  });
  main.append(filters, bulk || '', h('div', { class: 'table-wrap' }, table, list.empty),
    h('div', { class: 'more' }, list.button), list.status);

  const rows = new Map();

  function updateSelection() {
    if (!canRevoke) return;
    revokeButton.disabled = selected.size === 0;
    revokeButton.textContent = selected.size ? `Revoke selected (${selected.size})` : 'Revoke selected';
    selectionText.textContent = selected.size ? `${selected.size} selected` : '';
    const selectable = [...rows.values()].filter(({ box }) => box && !box.disabled).length;
    selectAll.checked = selected.size > 0 && selected.size === selectable;
  }

  function row(key) {
    const cells = [
      h('td', { 'data-label': 'Name' }, h('a', { href: `#/keys/${encodeURIComponent(key.id)}` }, key.name)),
      h('td', { 'data-label': 'Start' }, h('code', {}, `${key.start}…`)),
      h('td', { 'data-label': 'Owner' }, key.owner || '—'),
      h('td', { 'data-label': 'Scopes' }, h('div', { class: 'chips' }, key.scopes.length ? key.scopes.map((s) => h('span', { class: 'chip' }, s)) : '—')),
      h('td', { 'data-label': 'Status' }, badge(key.status)),
      h('td', { 'data-label': 'Created' }, h('span', { title: key.created_at }, when(key.created_at))),
      h('td', { 'data-label': 'Expires' }, key.expires_at ? h('span', { title: when(key.expires_at) }, relative(key.expires_at)) : 'never'),
      h('td', { 'data-label': 'Last used' }, key.last_used_at ? h('span', { title: when(key.last_used_at) }, relative(key.last_used_at)) : 'never'),
      h('td', { 'data-label': 'Tokens', class: 'num' }, String(key.tokens_issued)),
    ];
    let box = null;
    if (canRevoke) {
      // Only keys this session may revoke: not revoked already, owned by it
      // unless it holds admin:keys:write, and holding no reserved scope it
      // lacks (the server refuses the whole bulk request otherwise).
      const mayRevoke = key.status !== 'revoked' && (canWrite || key.owner === current.sub)
        && scopesAbove(key.scopes, current).length === 0;
      box = h('input', { type: 'checkbox', 'aria-label': `Select ${key.name}`, disabled: !mayRevoke });
      box.addEventListener('change', () => {
        if (box.checked) selected.add(key.id); else selected.delete(key.id);
        updateSelection();
      });
      cells.unshift(h('td', { 'data-label': 'Select' }, box));
    }
    const tr = h('tr', { dataset: { id: key.id } }, cells);
    rows.set(key.id, { tr, box, key });
    return tr;
  }

  selectAll?.addEventListener('change', () => {
    for (const [id, { box }] of rows) {
      if (box.disabled) continue;
      box.checked = selectAll.checked;
      if (box.checked) selected.add(id); else selected.delete(id);
    }
    updateSelection();
  });

  revokeButton.addEventListener('click', async () => {
    const ids = [...selected];
    const names = ids.map((id) => rows.get(id)?.key.name || id);
    const reason = h('input', { type: 'text', maxlength: 500 });
    const answer = await confirmDialog({
      title: `Revoke ${ids.length} key${ids.length === 1 ? '' : 's'}?`,
      body: [
        h('p', {}, 'Revocation is immediate and cannot be undone. ', session.revocationReach()),
        h('ul', {}, names.slice(0, 10).map((n) => h('li', {}, n)), names.length > 10 ? h('li', {}, `and ${names.length - 10} more`) : null),
      ],
      fields: [field('Reason (kept in the audit log)', 'reason', reason)],
      confirmLabel: 'Revoke',
      danger: true,
    });
    if (!answer) return;
    try {
      const result = await api('POST', '/keys/revoke', {
        body: { ids, reason: answer.values.reason || undefined },
      });
      notify(`Revoked ${result.revoked.length} key${result.revoked.length === 1 ? '' : 's'}${result.not_found.length ? `; ${result.not_found.length} not found` : ''}.`, 'success');
      selected.clear();
      // Show the new statuses: reload what is on screen.
      list.reset();
      rows.clear();
      await list.load();
    } catch (error) {
      if (error.status === 401) return;
      notify(error.message, 'error');
    }
  });

  await list.load();
}

function grow(box) {
  box.classList.add('grow');
  return box;
}
