// Events (#/events): the tenant's event streams (receivers of signed
// security events), a form to register one, and the tenant's leak reports.
// One stream's settings and deliveries are on its own page (stream.js).

import { api } from '../api.js';
import { h, page, notify, showError, clearErrors, badge } from '../dom.js';
import { when } from '../format.js';
import * as session from '../session.js';
import { streamForm, eventsList } from './stream-form.js';
import { leakReports } from './leaks.js';

const COLUMNS = ['Endpoint', 'Audience', 'Events', 'Status', 'Secret', 'Pending', 'Failed', 'Created'];

/** "https://a.example/x" → "a.example/x": what tells streams apart. */
export function shortEndpoint(endpoint) {
  return String(endpoint).replace(/^https?:\/\//, '');
}

export async function render() {
  const current = session.current();
  const main = page('Events');
  const { items } = await api('GET', '/event-streams');

  main.append(h('p', { class: 'page-intro' },
    'keymint tells your systems when a key is created, revoked, rotated, deleted, about to expire or reported leaked, ',
    'and when signing keys or the tenant\'s API keys change: each event is a signed Security Event Token (RFC 8417) ',
    'POSTed to every stream that wants it, retried with backoff until the receiver accepts it.'));

  const tbody = h('tbody', {}, items.map(row));
  const empty = h('p', { class: 'empty', hidden: items.length > 0 }, 'No streams yet: events are not sent anywhere.');
  main.append(h('h2', {}, 'Streams'),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'stack streams-table' },
        h('caption', { class: 'visually-hidden' }, 'Event streams, oldest first'),
        h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
        tbody),
      empty));

  /** The register form; after a registration a fresh one replaces it. */
  function registerForm() {
    const create = streamForm(null, { title: 'Register a stream', submitLabel: 'Register stream' });
    create.form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(create.form);
      const { body, errors } = create.read();
      if (errors.length) {
        showError(create.form, { errors });
        return;
      }
      create.submit.disabled = true;
      try {
        const stream = await api('POST', '/event-streams', { body });
        create.wipe();
        const added = row(stream);
        tbody.append(added);
        empty.hidden = true;
        create.form.replaceWith(registerForm());
        notify(`Stream to ${shortEndpoint(stream.endpoint)} registered.`, 'success');
        added.querySelector('a')?.focus();
      } catch (error) {
        if (error.status === 401) return;
        showError(create.form, error);
      } finally {
        create.submit.disabled = false;
      }
    });
    return create.form;
  }
  main.append(registerForm());

  if (session.can('admin:audit', current)) main.append(await leakReports());
}

function row(stream) {
  return h('tr', { dataset: { id: stream.id } },
    h('td', { 'data-label': 'Endpoint' },
      h('a', { href: `#/events/${encodeURIComponent(stream.id)}`, class: 'endpoint' }, shortEndpoint(stream.endpoint))),
    h('td', { 'data-label': 'Audience' }, h('code', { class: 'id' }, stream.audience)),
    h('td', { 'data-label': 'Events' }, eventsList(stream.events)),
    h('td', { 'data-label': 'Status' }, badge(stream.enabled ? 'enabled' : 'disabled')),
    h('td', { 'data-label': 'Secret' }, stream.has_bearer_secret ? 'bearer' : 'none'),
    h('td', { 'data-label': 'Pending', class: 'num' }, String(stream.pending)),
    h('td', { 'data-label': 'Failed', class: 'num' }, stream.failed ? h('strong', { class: 'bad' }, String(stream.failed)) : '0'),
    h('td', { 'data-label': 'Created' }, h('time', { datetime: stream.created_at, title: stream.created_at }, when(stream.created_at))));
}
