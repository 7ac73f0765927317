// Sign in: exchange an API key for an admin-audience token, then forget the key.

import { exchange, api } from '../api.js';
import { h, field, formError, showError, clearErrors, page } from '../dom.js';
import * as session from '../session.js';
import { go } from '../app.js';

export async function render() {
  const main = page('Sign in');
  const reason = session.takeReason();
  const secret = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const advanced = h('input', { type: 'checkbox', name: 'advanced' });
  const keyId = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const keyIdField = field('Key id', 'key_id', keyId, 'Advanced keys sign the exchange here in the browser; the secret is never sent.');
  keyIdField.hidden = true;
  advanced.addEventListener('change', () => {
    keyIdField.hidden = !advanced.checked;
    keyId.required = advanced.checked;
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card narrow', novalidate: true },
    reason ? h('p', { class: 'notice info', role: 'status' }, reason) : null,
    h('p', {}, 'Paste an API key holding admin scopes (for example the bootstrap key printed at first start). ',
      'The key is exchanged for a short-lived token and then forgotten.'),
    field('API key', 'key', secret),
    h('div', { class: 'field checkbox' },
      h('label', {}, advanced, ' This is an advanced (signed-request) key')),
    keyIdField,
    formError(),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const value = secret.value.trim();
    if (!value) {
      showError(form, { errors: [{ field: 'key', message: 'Paste an API key.' }] });
      return;
    }
    if (advanced.checked && !keyId.value.trim()) {
      showError(form, { errors: [{ field: 'key_id', message: 'An advanced key signs with its id: paste it too.' }] });
      return;
    }
    submit.disabled = true;
    const credentials = advanced.checked
      ? { advanced: true, keyId: keyId.value.trim(), secret: value }
      : { secret: value };
    try {
      const response = await exchange(credentials, { audience: session.server.adminAudience });
      secret.value = '';
      const started = session.start(response.access_token, null);
      await nameKey(started);
      go('/');
    } catch (error) {
      secret.value = '';
      showError(form, { message: signInMessage(error), errors: [] });
      secret.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(form);
  secret.focus();
}

function signInMessage(error) {
  const code = error.problem?.error;
  if (code === 'invalid_client') return 'That key was not accepted: it is unknown, revoked or expired.';
  if (code === 'invalid_target' || code === 'invalid_scope') {
    return 'That key holds no admin scope, so it cannot sign in to the console.';
  }
  if (code === 'unauthorized_client') return `That key may not be used from here: ${error.message}`;
  return error.message;
}

/** Looks up the signed-in key's name where the token may read it. */
async function nameKey(current) {
  if (session.keyAccess(current) === 'none') return;
  try {
    const key = await api('GET', `/keys/${encodeURIComponent(current.keyId)}`, { noTenant: true });
    session.save({ ...session.current(), keyName: key.name });
  } catch {
    // A keys:self key may not own itself; the id is shown instead.
  }
}
