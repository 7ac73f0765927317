// One event stream (#/events/<id>): its settings (edit, enable or disable,
// delete) and its deliveries, newest first, filtered by state, with
// "load more" and a replay of a failed or delivered one.

import { api } from '../api.js';
import { pager } from '../pager.js';
import { h, page, badge, confirmDialog, notify, showError, clearErrors, formError, field, nextId } from '../dom.js';
import { when, relative } from '../format.js';
import * as session from '../session.js';
import { go } from '../app.js';
import { streamForm, eventsList, eventName } from './stream-form.js';
import { shortEndpoint } from './events.js';

const PAGE = 25;
const STATES = ['pending', 'delivered', 'failed'];
const COLUMNS = ['Event', 'Subject', 'Occurred', 'State', 'Attempts', 'Last attempt', 'Next / delivered', 'Actions'];

export async function render(params, query) {
  let view;
  try {
    view = await api('GET', `/event-streams/${encodeURIComponent(params.id)}`);
  } catch (error) {
    if (error.status === 404 || error.status === 400) {
      const main = page('Stream not found');
      main.append(h('p', {}, 'There is no event stream with this id in this tenant. ',
        h('a', { href: '#/events' }, 'Back to the event streams.')));
      return;
    }
    throw error;
  }
  await show(view, query);
}

async function show(view, query) {
  const editButton = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false' }, 'Edit');
  const toggleButton = h('button', { type: 'button', class: 'secondary' }, view.enabled ? 'Disable' : 'Enable');
  const deleteButton = h('button', { type: 'button', class: 'danger' }, 'Delete');
  const main = page(`Stream to ${shortEndpoint(view.endpoint)}`, editButton, toggleButton, deleteButton);
  main.append(h('p', { class: 'key-status' }, badge(view.enabled ? 'enabled' : 'disabled'),
    view.failed ? [' ', h('span', { class: 'warning' }, `${view.failed} failed`)] : null,
    ' ', h('a', { href: '#/events' }, 'All streams')));

  const editSlot = h('div', { id: nextId('edit') });
  editButton.setAttribute('aria-controls', editSlot.id);
  main.append(editSlot, details(view));

  function closeEdit() {
    editSlot.replaceChildren();
    editButton.setAttribute('aria-expanded', 'false');
  }
  editButton.addEventListener('click', () => {
    if (editSlot.firstChild) {
      closeEdit();
      return;
    }
    editButton.setAttribute('aria-expanded', 'true');
    editSlot.append(editForm(view, () => {
      closeEdit();
      editButton.focus();
    }, query));
    editSlot.querySelector('input')?.focus();
  });
  toggleButton.addEventListener('click', async () => {
    toggleButton.disabled = true;
    try {
      const updated = await patch(view, { enabled: !view.enabled });
      notify(updated.enabled ? 'Stream enabled: events are queued for it again.' : 'Stream disabled: no events are queued for it.', 'success');
      await show(updated, query);
      document.getElementById('page-title')?.focus();
    } catch (error) {
      toggleButton.disabled = false;
      if (error.status !== 401) notify(`Not changed: ${error.message}`, 'error');
    }
  });
  deleteButton.addEventListener('click', () => remove(view));

  main.append(await deliveries(view, query));
}

function patch(view, body) {
  return api('PATCH', `/event-streams/${encodeURIComponent(view.id)}`, { body, contentType: 'application/merge-patch+json' });
}

function time(value, empty = '—') {
  if (!value) return empty;
  return h('time', { datetime: value, title: value }, `${when(value)} (${relative(value)})`);
}

function details(view) {
  const rows = [
    ['Stream id', h('code', { class: 'id' }, view.id)],
    ['Endpoint', h('code', { class: 'id' }, view.endpoint)],
    ['Audience', h('code', { class: 'id' }, view.audience)],
    ['Events', eventsList(view.events)],
    ['Status', view.enabled ? 'enabled: new events are queued for it' : 'disabled: no events are queued for it'],
    ['Bearer secret', view.has_bearer_secret ? 'set (never shown)' : 'none'],
    ['Pending', String(view.pending)],
    ['Failed', String(view.failed)],
    ['Created', time(view.created_at)],
    ['Updated', time(view.updated_at)],
  ];
  return h('section', { class: 'card key-details', 'aria-labelledby': 'stream-details' },
    h('h2', { id: 'stream-details' }, 'Details'),
    h('dl', { class: 'props' }, rows.map(([label, value]) => [h('dt', {}, label), h('dd', {}, value)])));
}

function editForm(view, close, query) {
  const edit = streamForm(view, { title: 'Edit stream', submitLabel: 'Save changes', cancel: close });
  edit.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(edit.form);
    const { body, errors } = edit.read();
    if (errors.length) {
      showError(edit.form, { errors });
      return;
    }
    if (!Object.keys(body).length) {
      notify('Nothing changed.', 'info');
      close();
      return;
    }
    edit.submit.disabled = true;
    try {
      const updated = await patch(view, body);
      edit.wipe();
      notify(`Saved ${Object.keys(body).join(', ')}.`, 'success');
      await show(updated, query);
      document.getElementById('page-title')?.focus();
    } catch (error) {
      if (error.status === 401) return;
      showError(edit.form, error);
    } finally {
      edit.submit.disabled = false;
    }
  });
  return edit.form;
}

async function remove(view) {
  const answer = await confirmDialog({
    title: `Delete the stream to ${shortEndpoint(view.endpoint)}?`,
    body: [
      h('p', {}, 'No more events are sent to it, and the deliveries still pending for it are dropped. ',
        'Its audit events stay. This cannot be undone.'),
    ],
    confirmLabel: 'Delete stream',
    danger: true,
  });
  if (!answer) return;
  try {
    await api('DELETE', `/event-streams/${encodeURIComponent(view.id)}`);
    notify(`Deleted the stream to ${shortEndpoint(view.endpoint)}.`, 'success');
    go('/events');
  } catch (error) {
    if (error.status === 401) return;
    notify(`Not deleted: ${error.message}`, 'error');
  }
}

// ------------------------------------------------------------ deliveries

async function deliveries(view, query) {
  const state = STATES.includes(query.state) ? query.state : '';
  const base = `/event-streams/${encodeURIComponent(view.id)}`;
  const canOpenKeys = session.keyAccess() === 'all';

  const select = h('select', {},
    h('option', { value: '' }, 'Any state'),
    STATES.map((s) => h('option', { value: s, selected: s === state }, s)));
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const filters = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter deliveries' },
    field('State', 'state', select),
    h('div', { class: 'actions' }, refresh),
    formError());
  select.addEventListener('change', () => {
    go(`/events/${encodeURIComponent(view.id)}${select.value ? `?state=${select.value}` : ''}`);
  });
  filters.addEventListener('submit', (event) => event.preventDefault());

  const tbody = h('tbody');
  const list = pager({
    into: tbody,
    fetchPage: (cursor) => api('GET', `${base}/deliveries`, { query: { state, cursor, limit: PAGE } }),
    render: (delivery) => row(delivery),
    onError: (error) => showError(filters, error),
    noun: ['delivery', 'deliveries'],
    emptyText: state ? `No ${state} deliveries.` : 'No deliveries yet: nothing has happened that this stream receives.',
  });
  refresh.addEventListener('click', async () => {
    list.reset();
    await list.load();
    notify('Deliveries refreshed.', 'info');
  });

  function row(d) {
    const name = eventName(d.event);
    const subject = d.subject && name.startsWith('key-') && canOpenKeys
      ? h('a', { href: `#/keys/${encodeURIComponent(d.subject)}` }, h('code', { class: 'id' }, d.subject))
      : (d.subject ? h('code', { class: 'id' }, d.subject) : '—');
    const last = d.last_attempt_at
      ? [time(d.last_attempt_at),
        d.last_status ? h('span', { class: 'hint block' }, `HTTP ${d.last_status}`) : null,
        d.last_error ? h('span', { class: 'hint block delivery-error' }, d.last_error) : null]
      : 'not tried yet';
    const next = d.state === 'delivered' ? time(d.delivered_at)
      : d.state === 'pending' ? [h('span', {}, 'next try '), time(d.next_attempt_at)] : 'given up';
    const replay = d.state === 'pending' ? null
      : h('button', { type: 'button', class: 'secondary', 'aria-label': `Replay ${name} ${d.id}` }, 'Replay');
    const tr = h('tr', { dataset: { id: d.id, state: d.state } },
      // One element per cell: at 390 px each cell is a two-column grid.
      h('td', { 'data-label': 'Event' }, h('div', {}, h('span', { title: d.event }, name),
        h('span', { class: 'hint block' }, h('code', { class: 'id', title: 'jti' }, d.id)))),
      h('td', { 'data-label': 'Subject' }, subject),
      h('td', { 'data-label': 'Occurred' }, time(d.occurred_at)),
      h('td', { 'data-label': 'State' }, badge(d.state)),
      h('td', { 'data-label': 'Attempts', class: 'num' }, String(d.attempts)),
      h('td', { 'data-label': 'Last attempt' }, h('div', {}, last)),
      h('td', { 'data-label': 'Next / delivered' }, h('div', {}, next)),
      h('td', { 'data-label': 'Actions' }, replay || '—'));
    replay?.addEventListener('click', async () => {
      replay.disabled = true;
      try {
        const queued = await api('POST', `${base}/deliveries/${encodeURIComponent(d.id)}/replay`);
        const fresh = row(queued);
        tr.replaceWith(fresh);
        notify(`${name} queued again (same jti), with a fresh retry budget.`, 'success');
        fresh.setAttribute('tabindex', '-1');
        fresh.focus();
      } catch (error) {
        replay.disabled = false;
        if (error.status !== 401) notify(`Not replayed: ${error.message}`, 'error');
      }
    });
    return tr;
  }

  const section = h('section', { class: 'deliveries', 'aria-labelledby': 'deliveries-title' },
    h('h2', { id: 'deliveries-title' }, 'Deliveries'),
    h('p', { class: 'hint' }, 'Each event sent to this stream, newest first. A failed one was given up after the last retry; ',
      'Replay sends it again with the same jti, so a receiver that has it already can tell.'),
    filters,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'stack deliveries-table' },
        h('caption', { class: 'visually-hidden' }, 'Deliveries, newest first'),
        h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
        tbody),
      list.empty),
    h('div', { class: 'more' }, list.button), list.status);
  await list.load();
  return section;
}
