// Try it: exchange any API key for a token at POST /api/v1/token, the way a
// client would, and look inside the result. The pasted key lives only in
// the input until the exchange, then it is cleared; nothing is stored.

import { exchange } from '../api.js';
import { h, mount, field, page, formError, showError, clearErrors, copyButton } from '../dom.js';
import { when, relative } from '../format.js';
import * as session from '../session.js';

/** OAuth error codes → the field they are about. */
function fieldOf(error) {
  const code = error.problem?.error;
  const text = error.problem?.error_description || '';
  if (code === 'invalid_client') return 'key';
  if (code === 'invalid_scope') return 'scope';
  if (code === 'invalid_target') return 'audience';
  if (code === 'invalid_request') {
    if (/expires_in/.test(text)) return 'expires_in';
    if (/\bscope\b/.test(text)) return 'scope';
    if (/audience/.test(text)) return 'audience';
  }
  return null;
}

const MESSAGES = {
  invalid_client: 'This key was not accepted: it is unknown, revoked or expired (or, for an advanced key, the id or signature is wrong).',
};

export async function render() {
  const main = page('Try it');
  const secret = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const advanced = h('input', { type: 'checkbox', name: 'advanced' });
  const keyId = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const keyIdField = field('Key id', 'key_id', keyId, 'An advanced key signs the request here in the browser (WebCrypto HMAC); its secret is not sent.');
  keyIdField.hidden = true;
  advanced.addEventListener('change', () => {
    keyIdField.hidden = !advanced.checked;
    keyId.required = advanced.checked;
  });
  const audience = h('input', { type: 'text', spellcheck: 'false', maxlength: 200 });
  const scope = h('input', { type: 'text', spellcheck: 'false' });
  const expiresIn = h('input', { type: 'number', min: 30, max: 3600, step: 1 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Get a token');
  const form = h('form', { class: 'card narrow', novalidate: true, 'aria-label': 'Token exchange' },
    h('p', {}, 'Exchange an API key for a short-lived token at ', h('code', {}, 'POST /api/v1/token'),
      ', exactly as a client does. The key is sent once and cleared from this page afterwards; it is never stored.'),
    field('API key', 'key', secret),
    h('div', { class: 'field checkbox' },
      h('label', {}, advanced, ' This is an advanced (signed-request) key')),
    keyIdField,
    field('Audience', 'audience', audience, session.server.adminAudience
      ? `Optional. Empty: the key's first audience, else the tenant's default. The console's own is ${session.server.adminAudience}.`
      : 'Optional. Empty: the key\'s first audience, else the tenant\'s default.'),
    field('Scope', 'scope', scope, 'Optional, space-separated. Empty: every scope of the key that fits the audience.'),
    field('Expires in (seconds)', 'expires_in', expiresIn, 'Optional, 30 to 3600. Empty: the tenant\'s default lifetime.'),
    formError(),
    h('div', { class: 'actions' }, submit));
  const result = h('section', { class: 'try-result', 'aria-labelledby': 'try-result-title', hidden: true });
  main.append(form, result);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const value = secret.value.trim();
    const errors = [];
    if (!value) errors.push({ field: 'key', message: 'Paste an API key.' });
    if (advanced.checked && !keyId.value.trim()) errors.push({ field: 'key_id', message: 'An advanced key signs with its id: paste it too.' });
    const ttlText = expiresIn.value.trim();
    const ttl = ttlText === '' ? undefined : Number(ttlText);
    if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 30 && ttl <= 3600)) {
      errors.push({ field: 'expires_in', message: 'A whole number of seconds from 30 to 3600.' });
    }
    if (errors.length) {
      showError(form, { message: 'Some values need fixing.', errors });
      return;
    }
    const credentials = advanced.checked
      ? { advanced: true, keyId: keyId.value.trim(), secret: value }
      : { secret: value };
    submit.disabled = true;
    result.hidden = true;
    result.replaceChildren();
    try {
      const response = await exchange(credentials, {
        audience: audience.value.trim() || undefined,
        scope: scope.value.trim() || undefined,
        expires_in: ttl,
      });
      showResult(result, response);
      result.hidden = false;
      result.querySelector('h2')?.focus();
    } catch (error) {
      const name = fieldOf(error);
      const message = MESSAGES[error.problem?.error] || error.message;
      const code = error.problem?.error;
      const label = code ? `${code}: ${message}` : message;
      showError(form, name
        ? { message: label, errors: [{ field: name, message: label }] }
        : { message: label, errors: [] });
    } finally {
      // The key is not kept, whatever happened.
      secret.value = '';
      submit.disabled = false;
    }
  });
  secret.focus();
}

function showResult(section, response) {
  let decoded = null;
  try {
    decoded = session.decodeJwt(response.access_token);
  } catch {
    decoded = null;
  }
  const props = [['token_type', response.token_type], ['expires_in', `${response.expires_in} s`],
    ['scope', response.scope || '(none)']];
  if (response.issued_token_type) props.push(['issued_token_type', response.issued_token_type]);
  const times = decoded ? ['iat', 'nbf', 'exp'].filter((k) => typeof decoded.payload[k] === 'number').map((k) => {
    const iso = new Date(decoded.payload[k] * 1000).toISOString();
    return [k, h('time', { datetime: iso, title: iso }, `${when(iso)} (${relative(iso)})`)];
  }) : [];
  mount(section,
    h('h2', { id: 'try-result-title', tabindex: '-1' }, 'Token issued'),
    h('dl', { class: 'props' }, props.map(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { prop: k } }, v)])),
    h('h3', {}, 'Access token'),
    h('div', { class: 'token-box' },
      h('code', { class: 'token', id: 'try-token' }, response.access_token),
      copyButton(response.access_token, 'Copy token')),
    decoded ? [
      h('div', { class: 'decoded' },
        h('div', {},
          h('h3', {}, 'Header'),
          h('pre', { class: 'jwt-header', tabindex: '0', 'aria-label': 'Decoded header' }, JSON.stringify(decoded.header, null, 2))),
        h('div', {},
          h('h3', {}, 'Claims'),
          h('pre', { class: 'jwt-claims', tabindex: '0', 'aria-label': 'Decoded claims' }, JSON.stringify(decoded.payload, null, 2)))),
      times.length ? h('dl', { class: 'props times' }, times.map(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { prop: k } }, v)])) : null,
      h('p', { class: 'hint' }, 'Decoded here without verifying the signature; services verify it against the JWKS.'),
    ] : h('p', { class: 'hint' }, 'The token could not be decoded.'));
}
