// Leak reports as the console shows them: a code host reported a key's
// secret found in public (POST /api/v1/leaks), and the server wrote a
// `key.leaked` audit event with the report's URL and source. The key page
// shows its own reports; the events page lists the tenant's.

import { api } from '../api.js';
import { pager } from '../pager.js';
import { h, formError } from '../dom.js';
import { when } from '../format.js';
import * as session from '../session.js';

const ACTION = 'key.leaked';

/** What the tenant's leak_response did, in words. */
function response(details) {
  if (details?.previous_secret_expired) return 'nothing to do: that secret no longer worked';
  if (details?.response === 'revoke') return 'revoked at once';
  if (details?.response === 'notify') return 'reported only (the key kept working)';
  return details?.response || '—';
}

/** Where the secret was found: shown as text, never as a link (it comes from outside). */
function where(details) {
  return details?.url ? h('code', { class: 'id leak-url' }, details.url) : '—';
}

/** Which secret the report named. */
function secretOf(details) {
  if (!details?.previous_secret) return 'its current secret';
  return details.previous_secret_expired
    ? 'its previous secret, past its grace period'
    : 'its previous secret, still in its grace period';
}

/** The key.leaked events of one key (newest first), [] when there are none. */
export async function leaksOf(keyId) {
  const page = await api('GET', '/audit-events', { query: { action: ACTION, key_id: keyId, limit: 20 } });
  return page.items.filter((event) => event.target_id === keyId);
}

/** The key page's warning about its leak reports. */
export function leakNotice(view, events) {
  const revoked = view.status === 'revoked';
  return h('section', { class: 'leak-box', 'aria-labelledby': 'leak-title' },
    h('h2', { id: 'leak-title' }, 'Leaked: this key\'s secret was found in public'),
    h('p', {}, revoked
      ? 'The key is revoked. Clients still holding the secret must get a new key.'
      : events.every((event) => event.details?.previous_secret_expired)
        ? 'The leaked secret had been replaced and no longer worked, so the key was left alone.'
        : 'The tenant\'s leak response only reports leaks, so the key still works: rotate its secret or revoke it.'),
    h('ul', { class: 'plain leak-list' }, events.map((event) => h('li', {},
      h('time', { datetime: event.at, title: event.at }, when(event.at)), ': reported by ',
      h('strong', {}, event.details?.source || 'an unnamed source'), ' at ', where(event.details),
      ` (${secretOf(event.details)}; ${response(event.details)})`))));
}

/** The tenant's leak reports, newest first, with "load more". */
export async function leakReports() {
  const current = session.current();
  const canOpenKeys = session.keyAccess(current) === 'all';
  const tbody = h('tbody');
  const error = formError();
  const list = pager({
    into: tbody,
    fetchPage: (cursor) => api('GET', '/audit-events', { query: { action: ACTION, limit: 20, cursor } }),
    render: (event) => h('tr', { dataset: { key: event.target_id || '' } },
      h('td', { 'data-label': 'Reported' }, h('time', { datetime: event.at, title: event.at }, when(event.at))),
      h('td', { 'data-label': 'Key' }, event.target_id && canOpenKeys
        ? h('a', { href: `#/keys/${encodeURIComponent(event.target_id)}` }, h('code', { class: 'id' }, event.target_id))
        : h('code', { class: 'id' }, event.target_id || '—')),
      h('td', { 'data-label': 'Source' }, event.details?.source || '—'),
      h('td', { 'data-label': 'Found at' }, where(event.details)),
      h('td', { 'data-label': 'Secret' }, event.details?.previous_secret ? 'previous' : 'current'),
      h('td', { 'data-label': 'Response' }, response(event.details))),
    onError: (err) => {
      error.textContent = err.message;
      error.hidden = false;
    },
    noun: ['report', 'reports'],
    emptyText: 'No leak reports: no key of this tenant was reported found in public.',
  });
  const section = h('section', { class: 'leak-reports', 'aria-labelledby': 'leak-reports-title' },
    h('h2', { id: 'leak-reports-title' }, 'Leak reports'),
    h('p', { class: 'hint' }, 'Keys whose secret a code host reported found in public (POST /api/v1/leaks). ',
      'What happens then is the tenant\'s leak response, in ',
      session.can('admin:settings', current) ? h('a', { href: '#/settings' }, 'Settings') : 'the tenant\'s settings', '.'),
    error,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'stack' },
        h('caption', { class: 'visually-hidden' }, 'Leak reports, newest first'),
        h('thead', {}, h('tr', {}, ['Reported', 'Key', 'Source', 'Found at', 'Secret', 'Response']
          .map((c) => h('th', { scope: 'col' }, c)))),
        tbody),
      list.empty),
    h('div', { class: 'more' }, list.button));
  await list.load();
  return section;
}
