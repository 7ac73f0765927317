// One key (#/keys/<id>): every field of its view, the actions the signed-in
// token may take on it (edit, revoke, rotate, delete), and its audit events.

import { api } from '../api.js';
import { pager } from '../pager.js';
import { h, field, page, badge, confirmDialog, notify, formError, clearErrors, showError, nextId } from '../dom.js';
import { when, relative, duration } from '../format.js';
import * as session from '../session.js';
import { go } from '../app.js';
import { secretBox, scopesAbove, showApiError, lines, MAX_GRACE_S } from './create.js';
import { leaksOf, leakNotice } from './leaks.js';

const AUDIT_PAGE = 20;

export async function render(params) {
  let view;
  try {
    view = await api('GET', `/keys/${encodeURIComponent(params.id)}`);
  } catch (error) {
    if (error.status === 404 || error.status === 400) {
      const main = page('Key not found');
      main.append(h('p', {}, 'There is no key with this id in this tenant, or the signed-in key may not see it. ',
        h('a', { href: '#/keys' }, 'Back to the keys.')));
      return;
    }
    throw error;
  }
  await show(view);
}

/** What the session may do with `view` (DESIGN §5 "Powers"). */
function powersOver(view, current) {
  const canWrite = session.can('admin:keys:write', current);
  const owns = Boolean(view.owner) && view.owner === current.sub;
  const selfRevoke = !canWrite && session.can('keys:self', current) && owns;
  const revoked = view.status === 'revoked';
  return {
    above: canWrite || selfRevoke ? scopesAbove(view.scopes, current) : [],
    edit: canWrite && !revoked,
    rotate: canWrite && view.status === 'active',
    revoke: (canWrite || selfRevoke) && !revoked,
    delete: canWrite,
  };
}

/**
 * Renders the page for `view`; `rotated` = {secret, previous_expires_at}
 * right after a rotation (the secret then lives only in this DOM).
 */
async function show(view, rotated = null) {
  const current = session.current();
  const may = powersOver(view, current);
  const blocked = may.above.length > 0;
  const reasonId = nextId('blocked-reason');
  const disabledBy = blocked ? { disabled: true, 'aria-describedby': reasonId } : {};

  const editButton = may.edit
    ? h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', ...disabledBy }, 'Edit') : null;
  const rotateButton = may.rotate ? h('button', { type: 'button', class: 'secondary', ...disabledBy }, 'Rotate secret') : null;
  const revokeButton = may.revoke ? h('button', { type: 'button', class: 'danger', ...disabledBy }, 'Revoke') : null;
  const deleteButton = may.delete ? h('button', { type: 'button', class: 'danger', ...disabledBy }, 'Delete') : null;

  // Leak reports live in the audit log (key.leaked), which needs admin:audit.
  const leaks = session.can('admin:audit', current) ? await leaksOf(view.id).catch((error) => {
    if (error.status === 401) throw error;
    return []; // the activity section below shows why the audit log is unreadable
  }) : [];
  const main = page(view.name, editButton, rotateButton, revokeButton, deleteButton);
  main.append(h('p', { class: 'key-status' }, badge(view.status), leaks.length ? [' ', badge('leaked')] : null,
    ' ', h('code', {}, `${view.start}…`),
    view.status === 'revoked' && view.revoked_at ? ` revoked ${when(view.revoked_at)}` : null,
    view.status === 'expired' ? ` expired ${when(view.expires_at)}` : null));
  if (blocked) {
    main.append(h('p', { class: 'notice info', id: reasonId },
      `This key holds ${may.above.join(', ')}, which the signed-in key does not: no caller acts above itself, so it cannot be changed from here.`));
  }
  if (leaks.length) main.append(leakNotice(view, leaks));
  if (view.status === 'revoked' && (current && session.can('admin:keys:write', current))) {
    main.append(h('p', { class: 'hint' }, 'A revoked key cannot be edited or rotated; it can still be deleted.'));
  }

  if (rotated) {
    main.append(secretBox(view, rotated.secret, { title: 'New secret: copy it now' }),
      h('p', { class: 'rotation-note', role: 'status' }, rotated.previous_expires_at
        ? `The previous secret keeps working until ${when(rotated.previous_expires_at)} (${relative(rotated.previous_expires_at)}); then only the new one does.`
        : 'The previous secret stopped working at once.'));
  }

  const editSlot = h('div', { id: nextId('edit') });
  main.append(editSlot, details(view));

  editButton?.setAttribute('aria-controls', editSlot.id);
  editButton?.addEventListener('click', () => {
    if (editSlot.firstChild) {
      editSlot.replaceChildren();
      editButton.setAttribute('aria-expanded', 'false');
      return;
    }
    editButton.setAttribute('aria-expanded', 'true');
    editSlot.append(editForm(view, () => {
      editSlot.replaceChildren();
      editButton.setAttribute('aria-expanded', 'false');
      editButton.focus();
    }));
    editSlot.querySelector('input')?.focus();
  });
  rotateButton?.addEventListener('click', () => rotate(view));
  revokeButton?.addEventListener('click', () => revoke(view, current));
  deleteButton?.addEventListener('click', () => remove(view, current));

  if (session.can('admin:audit', current)) main.append(await activity(view));
  if (rotated) main.querySelector('.secret-box h2')?.setAttribute('tabindex', '-1');
}

function json(value) {
  return h('pre', { class: 'json', tabindex: '0' }, h('code', {}, JSON.stringify(value, null, 2)));
}

function time(value, empty = '—') {
  if (!value) return empty;
  return h('span', { title: value }, `${when(value)} (${relative(value)})`);
}

function details(view) {
  const rows = [
    ['Key id', h('code', {}, view.id)],
    ['Tenant', view.tenant],
    ['Name', view.name],
    ['Description', view.description || '—'],
    ['Owner', view.owner || `none (its tokens' sub is key:${view.id})`],
    ['Starts with', h('code', {}, `${view.start}…`)],
    ['Scopes', view.scopes.length ? h('ul', { class: 'chips plain' }, view.scopes.map((s) => h('li', { class: 'chip' }, s))) : '—'],
    ['Security level', view.security_level === 'advanced' ? 'advanced (signed requests)' : 'standard'],
    ['IP allow-list', view.ip_allowlist?.length ? h('ul', { class: 'plain' }, view.ip_allowlist.map((c) => h('li', {}, h('code', {}, c)))) : 'any address'],
    ['Audiences', view.audiences.length ? h('ul', { class: 'plain' }, view.audiences.map((a) => h('li', {}, a))) : 'the tenant default'],
    ['Max token TTL', view.max_token_ttl_s ? `${view.max_token_ttl_s} s (${duration(view.max_token_ttl_s)})` : 'the tenant maximum'],
    ['Rate limit', view.rate_limit_per_s !== null && view.rate_limit_per_s !== undefined ? `${view.rate_limit_per_s} per second` : 'the tenant default'],
    ['Claims', view.claims ? json(view.claims) : '—'],
    ['Metadata', view.metadata ? json(view.metadata) : '—'],
    ['Status', badge(view.status)],
    ['Status list entry', view.status_list
      ? h('span', {}, `index ${view.status_list.idx} of `, h('code', {}, view.status_list.uri))
      : '—'],
    ['Created', time(view.created_at)],
    ['Updated', time(view.updated_at)],
    ['Expires', time(view.expires_at, 'never')],
    ['Last used', time(view.last_used_at, 'never')],
    ['Tokens issued', String(view.tokens_issued)],
    ['Revoked', time(view.revoked_at, 'no')],
    ['Revocation reason', view.revoked_reason || '—'],
    ['Previous secret valid until', time(view.previous_expires_at)],
    ['Created by', actorText(view.created_by)],
  ];
  return h('section', { class: 'card key-details', 'aria-labelledby': 'key-details' },
    h('h2', { id: 'key-details' }, 'Details'),
    h('dl', { class: 'props' }, rows.map(([label, value]) => [h('dt', {}, label), h('dd', {}, value)])));
}

function actorText(actor) {
  if (!actor) return '—';
  const parts = [actor.type || 'key'];
  if (actor.key_id) {
    parts.push(' ', h('a', { href: `#/keys/${encodeURIComponent(actor.key_id)}` }, h('code', {}, actor.key_id)));
  }
  if (actor.sub && actor.sub !== `key:${actor.key_id}`) parts.push(` (${actor.sub})`);
  if (actor.tenant && actor.tenant !== session.actingTenant()) parts.push(` in ${actor.tenant}`);
  return h('span', {}, parts);
}

// ------------------------------------------------------------------ edit

/** "2026-12-01T14:05" in the reader's zone, as <input type=datetime-local> wants. */
function localDateTime(value) {
  const d = new Date(value);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function editForm(view, close) {
  const name = h('input', { type: 'text', maxlength: 100, value: view.name, required: true });
  const description = h('textarea', { maxlength: 1000, rows: 2, class: 'prose' });
  description.value = view.description || '';
  const allowlist = h('textarea', { rows: 3, spellcheck: 'false', autocapitalize: 'off' });
  allowlist.value = (view.ip_allowlist || []).join('\n');
  const metadata = h('textarea', { rows: 4, spellcheck: 'false', autocapitalize: 'off' });
  metadata.value = view.metadata ? JSON.stringify(view.metadata, null, 2) : '';
  const initialExpiry = view.expires_at ? localDateTime(view.expires_at) : '';
  const expires = h('input', {
    type: 'datetime-local', value: initialExpiry, min: localDateTime(Date.now()), max: initialExpiry || null,
  });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
  const cancel = h('button', { type: 'button', class: 'secondary', onclick: close }, 'Cancel');
  const form = h('form', { class: 'card edit-key', novalidate: true, 'aria-label': `Edit ${view.name}` },
    h('h2', {}, 'Edit key'),
    h('div', { class: 'grid2' },
      field('Name', 'name', name),
      field('Expires', 'expires_at', expires,
        view.expires_at ? 'Only an earlier time is accepted (your time zone).' : 'The key never expires; set a time to make it expire (your time zone).')),
    field('Description', 'description', description, 'Empty removes it.'),
    field('IP allow-list', 'ip_allowlist', allowlist, 'One CIDR per line. Empty removes the list (any address).'),
    field('Metadata', 'metadata', metadata, 'A JSON object, up to 4 KiB. Members you remove are removed; empty removes it all.'),
    formError(),
    h('div', { class: 'actions' }, save, cancel));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const patch = {};
    const problems = [];
    const newName = name.value.trim();
    if (!newName) problems.push({ field: 'name', message: 'A key needs a name.' });
    else if (newName !== view.name) patch.name = newName;

    const newDescription = description.value.trim();
    if (newDescription !== (view.description || '')) patch.description = newDescription || null;

    const cidrs = lines(allowlist.value);
    const oldCidrs = view.ip_allowlist || [];
    if (JSON.stringify(cidrs) !== JSON.stringify(oldCidrs)) patch.ip_allowlist = cidrs.length ? cidrs : null;

    const metaText = metadata.value.trim();
    if (!metaText) {
      if (view.metadata) patch.metadata = null;
    } else {
      let parsed;
      try {
        parsed = JSON.parse(metaText);
      } catch (error) {
        problems.push({ field: 'metadata', message: `Not valid JSON: ${error.message}` });
      }
      if (parsed !== undefined) {
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
          problems.push({ field: 'metadata', message: 'Must be a JSON object, e.g. {"team": "payments"}.' });
        } else if (JSON.stringify(parsed) !== JSON.stringify(view.metadata)) {
          patch.metadata = diffPatch(view.metadata || {}, parsed);
        }
      }
    }

    if (expires.value !== initialExpiry) {
      if (!expires.value) {
        problems.push({ field: 'expires_at', message: 'The expiry can be shortened, not removed.' });
      } else {
        const at = new Date(expires.value);
        if (Number.isNaN(at.getTime())) problems.push({ field: 'expires_at', message: 'Not a date and time.' });
        else if (view.expires_at && at > new Date(view.expires_at)) {
          problems.push({ field: 'expires_at', message: 'Only an earlier time than now set is accepted.' });
        } else patch.expires_at = at.toISOString();
      }
    }

    if (problems.length) {
      showError(form, { errors: problems });
      return;
    }
    if (!Object.keys(patch).length) {
      notify('Nothing changed.', 'info');
      close();
      return;
    }
    save.disabled = true;
    try {
      const updated = await api('PATCH', `/keys/${encodeURIComponent(view.id)}`, {
        body: patch, contentType: 'application/merge-patch+json',
      });
      notify(`Saved ${Object.keys(patch).join(', ')}.`, 'success');
      await show(updated);
      document.getElementById('page-title')?.focus();
    } catch (error) {
      if (error.status === 401) return;
      showApiError(form, error);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// --------------------------------------------------------------- actions

async function rotate(view) {
  const grace = h('input', { type: 'number', min: 0, max: MAX_GRACE_S, step: 1, value: '0', required: true, inputmode: 'numeric' });
  const answer = await confirmDialog({
    title: `Rotate the secret of “${view.name}”?`,
    body: [
      h('p', {}, 'A new secret is made and shown once. The key id stays the same.'),
      h('p', {}, 'The current secret keeps working for the grace period, so clients can switch; never past the key\'s expiry. ',
        'A previous secret still in its grace period stops at once.'),
    ],
    fields: [field('Grace period (seconds)', 'grace_period_s', grace, `0 (the old secret stops now) to ${MAX_GRACE_S} (7 days).`)],
    confirmLabel: 'Rotate',
    danger: true,
  });
  if (!answer) return;
  const seconds = Number(answer.values.grace_period_s || 0);
  try {
    const rotated = await api('POST', `/keys/${encodeURIComponent(view.id)}/rotate`, { body: { grace_period_s: seconds } });
    const { key: secret, ...rest } = rotated;
    notify('Rotated: copy the new secret now.', 'success');
    await show(rest, { secret, previous_expires_at: rest.previous_expires_at });
    document.querySelector('.secret-box h2')?.focus();
  } catch (error) {
    if (error.status === 401) return;
    notify(`Not rotated: ${error.message}`, 'error');
  }
}

async function revoke(view, current) {
  const reason = h('input', { type: 'text', maxlength: 500 });
  const own = view.id === current.keyId;
  const answer = await confirmDialog({
    title: `Revoke “${view.name}”?`,
    body: [
      h('p', {}, 'Revocation is immediate and cannot be undone; keys this key created through keys:self are revoked too. ',
        session.revocationReach()),
      own ? h('p', { class: 'warning' }, 'This is the key you are signed in with: revoking it ends this session.') : null,
    ],
    fields: [field('Reason (kept in the audit log)', 'reason', reason)],
    confirmLabel: 'Revoke',
    danger: true,
  });
  if (!answer) return;
  try {
    const body = answer.values.reason?.trim() ? { reason: answer.values.reason.trim() } : {};
    const updated = await api('POST', `/keys/${encodeURIComponent(view.id)}/revoke`, { body });
    notify(`Revoked “${view.name}”.`, 'success');
    await show(updated);
    document.getElementById('page-title')?.focus();
  } catch (error) {
    if (error.status === 401) return;
    notify(`Not revoked: ${error.message}`, 'error');
  }
}

async function remove(view) {
  const answer = await confirmDialog({
    title: `Delete “${view.name}”?`,
    body: [
      h('p', {}, 'The key is revoked and disappears from every list; keys it created through keys:self are revoked too. ',
        'Its audit events stay. This cannot be undone.'),
    ],
    confirmLabel: 'Delete',
    danger: true,
  });
  if (!answer) return;
  try {
    await api('DELETE', `/keys/${encodeURIComponent(view.id)}`);
    notify(`Deleted “${view.name}”.`, 'success');
    go('/keys');
  } catch (error) {
    if (error.status === 401) return;
    notify(`Not deleted: ${error.message}`, 'error');
  }
}

// -------------------------------------------------------------- activity

async function activity(view) {
  const tbody = h('tbody');
  const error = formError();
  const list = pager({
    into: tbody,
    fetchPage: (cursor) => api('GET', '/audit-events', { query: { key_id: view.id, limit: AUDIT_PAGE, cursor } }),
    render: (event) => eventRow(event),
    onError: (err) => showError(section, err),
    noun: ['event', 'events'],
    emptyText: 'No events for this key.',
  });
  const section = h('section', { class: 'key-activity', 'aria-labelledby': 'key-activity' },
    h('h2', { id: 'key-activity' }, 'Activity'),
    error,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'stack' },
        h('caption', { class: 'visually-hidden' }, 'Audit events of this key, newest first'),
        h('thead', {}, h('tr', {}, ['When', 'Action', 'Actor', 'Outcome', 'Address', 'Request id', 'Details']
          .map((c) => h('th', { scope: 'col' }, c)))),
        tbody),
      list.empty),
    h('div', { class: 'more' }, list.button));

  await list.load();
  return section;
}

function eventRow(event) {
  const details = event.details && Object.keys(event.details).length
    ? h('code', { class: 'event-details' }, JSON.stringify(event.details)) : '—';
  return h('tr', {},
    h('td', { 'data-label': 'When' }, h('span', { title: event.at }, when(event.at))),
    h('td', { 'data-label': 'Action' }, event.action, event.count > 1 ? ` ×${event.count}` : ''),
    h('td', { 'data-label': 'Actor' }, actorText(event.actor)),
    h('td', { 'data-label': 'Outcome' }, badge(event.outcome)),
    h('td', { 'data-label': 'Address' }, event.ip || '—'),
    h('td', { 'data-label': 'Request id' }, event.request_id ? h('code', {}, event.request_id) : '—'),
    h('td', { 'data-label': 'Details' }, details));
}

/**
 * The JSON merge patch (RFC 7396) that turns `from` into `to`: removed
 * members become null, nested objects are diffed member by member.
 */
function diffPatch(from, to) {
  const isObject = (v) => v && typeof v === 'object' && !Array.isArray(v);
  const patch = {};
  for (const name of Object.keys(from)) {
    if (!(name in to)) patch[name] = null;
  }
  for (const [name, value] of Object.entries(to)) {
    if (isObject(value) && isObject(from[name])) {
      const inner = diffPatch(from[name], value);
      if (Object.keys(inner).length) patch[name] = inner;
    } else if (JSON.stringify(value) !== JSON.stringify(from[name])) {
      patch[name] = value;
    }
  }
  return patch;
}
