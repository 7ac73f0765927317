// Signing keys (system tenant, admin:signing-keys): metadata only. Rotate
// on demand; emergency-revoke a key after typing the start of its kid.

import { api } from '../api.js';
import { h, field, page, badge, confirmDialog, notify } from '../dom.js';
import { when, relative, duration } from '../format.js';
import * as session from '../session.js';

const ORDER = { next: 0, active: 1, retired: 2, revoked: 3 };
const TOO_YOUNG = /published (\d+) s ago; it may sign only after (\d+) s/;

export async function render() {
  const rotate = h('button', { type: 'button', class: 'primary' }, 'Rotate now');
  const main = page('Signing keys', rotate);
  const status = h('div', { class: 'signing-status', role: 'status' });
  const tbody = h('tbody');
  const table = h('table', { class: 'stack' },
    h('caption', { class: 'visually-hidden' }, 'Signing keys'),
    h('thead', {}, h('tr', {}, ...['Key id (kid)', 'Algorithm', 'State', 'Created', 'Signs from', 'Retires', 'Revoked', 'Actions']
      .map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  main.append(
    h('p', { class: 'hint page-intro' }, 'Tokens are signed by the active key. The next key is published in the JWKS before it signs, so verifiers know it in time; retired keys stay published until their last tokens expire. These keys belong to the whole server, not to one tenant.'),
    status,
    h('div', { class: 'table-wrap' }, table));

  let keys = [];

  /** Reloads the table after an action; a failure leaves the old rows. */
  async function refresh() {
    try {
      await load();
    } catch (error) {
      if (error.status !== 401) notify(`Could not reload the list: ${error.message}`, 'error');
    }
  }

  async function load() {
    const result = await api('GET', '/signing-keys', { noTenant: true });
    keys = [...result.items].sort((a, b) => (ORDER[a.state] ?? 9) - (ORDER[b.state] ?? 9)
      || b.created_at.localeCompare(a.created_at));
    tbody.replaceChildren(...keys.map(row));
  }

  function row(key) {
    const revoke = key.state === 'revoked' ? null
      : h('button', { type: 'button', class: 'danger', onclick: () => emergencyRevoke(key) },
        'Emergency revoke', h('span', { class: 'visually-hidden' }, ` ${key.kid.slice(0, 8)}`));
    return h('tr', { dataset: { kid: key.kid, state: key.state } },
      h('td', { 'data-label': 'Key id (kid)' }, h('code', { class: 'id' }, key.kid)),
      h('td', { 'data-label': 'Algorithm' }, key.alg),
      h('td', { 'data-label': 'State' }, badge(key.state)),
      h('td', { 'data-label': 'Created' }, time(key.created_at)),
      h('td', { 'data-label': 'Signs from' }, time(key.activates_at, true)),
      h('td', { 'data-label': 'Retires' }, time(key.retired_at, true)),
      h('td', { 'data-label': 'Revoked' }, time(key.revoked_at)),
      h('td', { 'data-label': 'Actions' }, revoke || '—'));
  }

  rotate.addEventListener('click', async () => {
    const next = keys.find((k) => k.state === 'next');
    const active = keys.find((k) => k.state === 'active');
    const answer = await confirmDialog({
      title: 'Rotate the signing key now?',
      body: [
        h('p', {}, next
          ? ['The next key ', h('code', {}, short(next.kid)), ' starts signing shortly (every replica switches at the same instant).']
          : 'The next key starts signing shortly (every replica switches at the same instant).'),
        h('p', {}, active
          ? ['The active key ', h('code', {}, short(active.kid)), ' is retired then; it stays published until the tokens it signed have expired, so they remain valid.']
          : 'The active key is retired then; it stays published until the tokens it signed have expired.'),
        h('p', {}, 'A new next key is created and published at once.'),
      ],
      confirmLabel: 'Rotate now',
    });
    if (!answer) {
      rotate.focus();
      return;
    }
    rotate.disabled = true;
    try {
      const result = await api('POST', '/signing-keys/rotate', { noTenant: true });
      say('success', [
        'Rotated. Key ', h('code', {}, short(result.activated_kid)), ` signs from ${when(result.activates_at)} (${relative(result.activates_at)})`,
        result.retired_kid ? ['; key ', h('code', {}, short(result.retired_kid)), ' retires then'] : null,
        '; the new next key is ', h('code', {}, short(result.next_kid)), '.']);
      await refresh();
    } catch (error) {
      if (error.status === 401) return;
      if (error.status === 409) {
        const found = TOO_YOUNG.exec(error.message);
        say('error', found
          ? `Not rotated: the next key was published only ${duration(found[1])} ago, and it must be published for at least ${duration(found[2])} (signing.prepublish_s) before it signs, so that verifiers caching the JWKS already know it. Try again in about ${duration(Number(found[2]) - Number(found[1]))}.`
          : `Not rotated: ${error.message}`);
        await refresh();
      } else {
        say('error', `Not rotated: ${error.message}`);
      }
    } finally {
      rotate.disabled = false;
      rotate.focus();
    }
  });

  async function emergencyRevoke(key) {
    const prefix = key.kid.slice(0, 8);
    const signedSession = sessionKid() === key.kid;
    const typed = h('input', {
      type: 'text', autocomplete: 'off', spellcheck: 'false', required: true,
      pattern: prefix.replace(/[^A-Za-z0-9_-]/g, ''), maxlength: 64,
      title: `Type ${prefix}, the first 8 characters of the key id`,
    });
    const answer = await confirmDialog({
      title: `Emergency revoke ${short(key.kid)}?`,
      body: [
        h('p', {}, 'Every token this key signed becomes inactive at once: introspection answers inactive, and the key leaves the JWKS, so verifiers refuse its tokens once they refresh it. This cannot be undone.'),
        key.state === 'active' ? h('p', { class: 'warning' }, 'This is the key signing tokens right now: the next key takes over immediately and a new next key is created. Clients must fetch new tokens.') : null,
        signedSession ? h('p', { class: 'warning' }, 'It also signed this console session: you will be signed out.') : null,
        h('p', {}, 'Key id: ', h('code', { class: 'id' }, key.kid)),
      ],
      fields: [field(`Type the first 8 characters of the key id (${prefix}) to confirm`, 'confirm_kid', typed)],
      confirmLabel: 'Revoke key',
      danger: true,
    });
    if (!answer) return;
    if (answer.values.confirm_kid !== prefix) {
      say('error', 'Not revoked: the characters typed do not match the key id.');
      return;
    }
    try {
      const revoked = await api('POST', `/signing-keys/${encodeURIComponent(key.kid)}/revoke`, { noTenant: true });
      say('success', ['Key ', h('code', {}, short(revoked.kid)), ` revoked ${when(revoked.revoked_at)}; its tokens are inactive.`]);
      await refresh();
    } catch (error) {
      if (error.status === 401) return;
      say('error', `Not revoked: ${error.message}`);
    }
  }

  function say(kind, content) {
    status.replaceChildren(h('p', { class: ['notice', kind] }, content));
  }

  await load();
}

function time(value, withRelative = false) {
  if (!value) return '—';
  const future = new Date(value).getTime() > Date.now();
  return h('time', { datetime: value, title: value }, when(value),
    withRelative && future ? h('span', { class: 'hint' }, ` (${relative(value)})`) : null);
}

function short(kid) {
  return `${kid.slice(0, 8)}…`;
}

function sessionKid() {
  try {
    return session.decodeJwt(session.current().token).header.kid;
  } catch {
    return null;
  }
}
