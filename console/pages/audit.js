// Audit log: the acting tenant's events, newest first; filters live in the
// hash query (like the keys list) and "Load more" follows the cursor.

import { api } from '../api.js';
import { pager } from '../pager.js';
import { h, field, page, badge, showError, formError } from '../dom.js';
import { when } from '../format.js';
import * as session from '../session.js';
import { go } from '../app.js';

/** DESIGN §5 "Audit" (and crate::audit::ACTIONS). */
export const ACTIONS = ['key.created', 'key.updated', 'key.revoked', 'key.deleted', 'key.rotated',
  'key.expiring', 'key.leaked', 'event_stream.created', 'event_stream.updated', 'event_stream.deleted',
  'event_stream.replayed', 'token.revoked', 'token.denied', 'settings.updated', 'tenant.created', 'tenant.updated',
  'signing_key.rotated', 'signing_key.activated', 'signing_key.retired', 'signing_key.revoked',
  'admin.denied'];

const COLUMNS = ['Time', 'Action', 'Outcome', 'Actor', 'Target', 'IP', 'Request id', 'Details'];

export async function render(_params, query) {
  const current = session.current();
  const main = page('Audit log');

  const action = h('select', {},
    h('option', { value: '' }, 'Any action'),
    ...ACTIONS.map((a) => h('option', { value: a, selected: query.action === a }, a)));
  const keyId = h('input', { type: 'text', value: query.key_id || '', maxlength: 200, spellcheck: 'false' });
  const actor = h('input', { type: 'text', value: query.actor || '', maxlength: 200, spellcheck: 'false' });
  const since = h('input', { type: 'datetime-local', value: toLocalInput(query.since) });
  const until = h('input', { type: 'datetime-local', value: toLocalInput(query.until) });
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter audit events' },
    field('Action', 'action', action),
    field('Key id', 'key_id', keyId),
    field('Actor', 'actor', actor, 'A key id, cli or system'),
    field('Since', 'since', since),
    field('Until', 'until', until),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
      Object.keys(query).length ? h('a', { class: 'button-link secondary', href: '#/audit' }, 'Clear') : null),
    formError());
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (action.value) params.set('action', action.value);
    if (keyId.value.trim()) params.set('key_id', keyId.value.trim());
    if (actor.value.trim()) params.set('actor', actor.value.trim());
    const from = toRfc3339(since.value);
    const to = toRfc3339(until.value);
    if (from) params.set('since', from);
    if (to) params.set('until', to);
    const qs = params.toString();
    go(`/audit${qs ? `?${qs}` : ''}`);
  });
  action.addEventListener('change', () => filters.requestSubmit());

  const tbody = h('tbody');
  const table = h('table', { class: 'stack audit-table' },
    h('caption', { class: 'visually-hidden' }, 'Audit events, newest first'),
    h('thead', {}, h('tr', {}, ...COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const list = pager({
    into: tbody,
    fetchPage: (cursor) => api('GET', '/audit-events', {
      query: {
        action: query.action, key_id: query.key_id, actor: query.actor,
        since: query.since, until: query.until, limit: 50, cursor,
      },
    }),
    render: (event) => row(event),
    onError: (error) => showError(filters, error),
    noun: ['event', 'events'],
    emptyText: 'No events match.',
  });
  main.append(filters, h('div', { class: 'table-wrap' }, table, list.empty), h('div', { class: 'more' }, list.button), list.status);

  const canOpen = { key: session.keyAccess(current) === 'all', event_stream: session.can('admin:events', current) };
  function row(event) {
    const tr = h('tr', { dataset: { id: event.id, action: event.action } },
      h('td', { 'data-label': 'Time' }, h('time', { datetime: event.at, title: event.at }, when(event.at))),
      h('td', { 'data-label': 'Action' }, h('code', {}, event.action),
        event.count > 1 ? h('span', { class: 'hint' }, ` ×${event.count}`) : null),
      h('td', { 'data-label': 'Outcome' }, badge(event.outcome)),
      h('td', { 'data-label': 'Actor' }, actorCell(event.actor, session.actingTenant(current))),
      h('td', { 'data-label': 'Target' }, targetCell(event, canOpen)),
      h('td', { 'data-label': 'IP' }, event.ip ? h('code', {}, event.ip) : '—'),
      h('td', { 'data-label': 'Request id' }, event.request_id ? h('code', { class: 'id' }, event.request_id) : '—'),
      h('td', { 'data-label': 'Details' }, detailsCell(event.details)));
    return tr;
  }

  await list.load();
}

function actorCell(actor, acting) {
  if (!actor) return '—';
  const parts = [h('span', { class: 'actor-type' }, actor.type)];
  if (actor.key_id) parts.push(' ', h('code', { class: 'id' }, actor.key_id));
  if (actor.sub && actor.sub !== `key:${actor.key_id}`) parts.push(h('span', { class: 'hint block' }, `sub ${actor.sub}`));
  if (actor.tenant && actor.tenant !== acting) parts.push(h('span', { class: 'hint block' }, `from tenant ${actor.tenant}`));
  return parts;
}

/** The pages a target opens (a deleted stream's says "not found"). */
const TARGET_PAGES = { key: '#/keys/', event_stream: '#/events/' };

function targetCell(event, canOpen) {
  if (!event.target_type && !event.target_id) return '—';
  const id = event.target_id || '';
  const label = event.target_type || 'target';
  const text = h('code', { class: 'id' }, id);
  if (id && Object.hasOwn(canOpen, event.target_type) && canOpen[event.target_type]) {
    return [h('span', { class: 'hint' }, `${label} `), h('a', { href: `${TARGET_PAGES[event.target_type]}${encodeURIComponent(id)}` }, text)];
  }
  return [h('span', { class: 'hint' }, `${label} `), text];
}

/** A one-line summary of the details object, the whole of it on demand. */
function detailsCell(details) {
  if (!details || typeof details !== 'object' || !Object.keys(details).length) return '—';
  const summary = Object.entries(details).map(([k, v]) => `${k}: ${compact(v)}`).join(', ');
  const short = summary.length > 70 ? `${summary.slice(0, 67)}…` : summary;
  return h('details', { class: 'event-details' },
    h('summary', {}, short),
    h('pre', {}, JSON.stringify(details, null, 2)));
}

function compact(value) {
  if (value === null || value === undefined) return '—';
  if (Array.isArray(value)) return value.map(compact).join(' ');
  if (typeof value === 'object') return '{…}';
  return String(value);
}

/** "2026-11-30T14:05" (local, as a datetime-local input holds it) → RFC 3339 UTC. */
function toRfc3339(local) {
  if (!local) return '';
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

/** RFC 3339 → the local "YYYY-MM-DDTHH:MM" a datetime-local input shows. */
function toLocalInput(value) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
