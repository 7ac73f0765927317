// Create a key (#/keys/new): the create body of the admin API as a form,
// limited to what the signed-in token may grant, then the secret, once.
//
// The secret lives only in the result's DOM and in local variables: it is
// never put in storage, in the URL or in a log, and a reload shows the empty
// form again.

import { api } from '../api.js';
import { h, field, page, formError, showError, clearErrors, copyButton, nextId } from '../dom.js';
import { when, duration } from '../format.js';
import * as session from '../session.js';

/** The scopes that only admin-audience tokens carry (DESIGN §5 "Powers"). */
export const RESERVED_SCOPES = [
  'admin:keys:read', 'admin:keys:write', 'admin:settings', 'admin:audit',
  'admin:signing-keys', 'admin:tenants', 'admin:events', 'keys:self', 'tokens:introspect',
];
/** Reserved scopes that exist only in the system tenant. */
const SYSTEM_ONLY = ['admin:tenants', 'admin:signing-keys'];
const SYSTEM_TENANT = 'default';

const SCOPE_SYNTAX = /^[A-Za-z0-9:._/-]{1,100}$/;
const DAY = 86400;
const PRESETS = [
  { id: 'd7', label: '7 days', seconds: 7 * DAY },
  { id: 'd30', label: '30 days', seconds: 30 * DAY },
  { id: 'd60', label: '60 days', seconds: 60 * DAY },
  { id: 'd90', label: '90 days', seconds: 90 * DAY },
  { id: 'y1', label: '1 year', seconds: 365 * DAY },
  { id: 'date', label: 'On a date' },
  { id: 'never', label: 'Never' },
];
const MAX_GRACE_S = 604800;

export function isReserved(scope) {
  return RESERVED_SCOPES.includes(scope);
}

/** A list of the reserved scopes in `scopes` that the session lacks. */
export function scopesAbove(scopes, current = session.current()) {
  return (scopes || []).filter((s) => isReserved(s) && !(current?.scopes || []).includes(s));
}

/**
 * Shows an API error in `root` like dom.showError, with some field names
 * mapped to the box that shows them (`aliases`), and a 422's policy detail
 * put next to the field it names instead of a bare "violates the policy".
 */
export function showApiError(root, error, aliases = {}) {
  const errors = (error.errors || []).map((item) => {
    const first = String(item.field || '').split(/[.[]/)[0];
    let message = item.message;
    if (error.status === 422 && error.problem?.detail && /violates the tenant's policy/.test(message)) {
      message = error.problem.detail;
    }
    return { field: aliases[first] || item.field, message };
  });
  showError(root, { message: error.message, status: error.status, errors });
}

/** A labelled group of controls (radio buttons) whose API errors show under it. */
export function group(legend, name, content, hint) {
  const errorId = nextId(`${name}-error`);
  const hintId = hint ? nextId(`${name}-hint`) : null;
  return h('fieldset', { class: 'group', dataset: { field: name }, 'aria-describedby': [hintId, errorId].filter(Boolean).join(' ') },
    h('legend', {}, legend),
    content,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true }));
}

/** One line per entry, blank lines dropped: "10.0.0.0/8\n\n::1/128" → [...]. */
export function lines(text) {
  return text.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
}

/** "YYYY-MM-DD" of a Date in the reader's zone (what <input type=date> uses). */
function localDate(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * A chip list: type a value, Enter or comma adds it; each chip has a
 * remove button. `check(value, values)` returns a message to refuse it.
 * Returns {box, values(), flush()}; flush() adds what is still typed and
 * says whether that worked.
 */
function chipField({ label, name, hint, suggestions = [], check }) {
  const values = [];
  const listId = suggestions.length ? nextId(`${name}-suggestions`) : null;
  const input = h('input', {
    type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', list: listId,
  });
  const box = field(label, name, input, hint);
  const error = box.querySelector('.field-error');
  const chips = h('ul', { class: 'chips chip-list', 'aria-label': `${label}: added` });
  const status = h('span', { class: 'visually-hidden', 'aria-live': 'polite' });
  const wrap = h('div', { class: 'chip-input' });
  input.replaceWith(wrap);
  wrap.append(chips, input, status);
  if (listId) {
    wrap.append(h('datalist', { id: listId }, suggestions.map((s) => h('option', { value: s }))));
  }

  function say(message) {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  }

  function add(raw) {
    const value = raw.trim();
    if (!value) return true;
    if (values.includes(value)) {
      say('');
      return true;
    }
    const refusal = check ? check(value, values) : null;
    if (refusal) {
      say(refusal);
      return false;
    }
    say('');
    values.push(value);
    const remove = h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${value}` }, '×');
    const chip = h('li', { class: 'chip' }, h('span', {}, value), remove);
    remove.addEventListener('click', () => {
      const at = values.indexOf(value);
      if (at >= 0) values.splice(at, 1);
      const next = chip.nextElementSibling?.querySelector('button') || chip.previousElementSibling?.querySelector('button') || input;
      chip.remove();
      status.textContent = `Removed ${value}.`;
      next.focus();
    });
    chips.append(chip);
    status.textContent = `Added ${value}.`;
    return true;
  }

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ',') {
      event.preventDefault();
      if (add(input.value)) input.value = '';
    } else if (event.key === 'Backspace' && !input.value && values.length) {
      chips.lastElementChild?.querySelector('button')?.focus();
    }
  });
  // Pasted "a, b, c" becomes three chips; the text after the last comma stays.
  input.addEventListener('input', () => {
    if (!input.value.includes(',')) return;
    const parts = input.value.split(',');
    const rest = parts.pop();
    const refused = parts.filter((part) => !add(part));
    input.value = [...refused, rest].join(',');
  });

  return {
    box,
    values: () => [...values],
    flush() {
      if (add(input.value)) {
        input.value = '';
        return true;
      }
      return false;
    },
  };
}

/**
 * The warning box that shows a new secret once: the secret, a copy button,
 * the words that it will not be shown again; for an advanced key its id and
 * how to sign a request (DESIGN §6).
 */
export function secretBox(view, secret, { title = 'Copy the secret now' } = {}) {
  const titleId = nextId('secret-title');
  const code = h('code', { class: 'secret', id: nextId('secret') }, secret);
  const box = h('section', { class: 'secret-box', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, title),
    h('p', { class: 'warning' }, 'This is the only time the secret is shown: it will not be shown again. ',
      'Store it in a secret manager now; if it is lost, rotate the key.'),
    h('p', { class: 'secret-label' }, view.security_level === 'advanced' ? 'Secret (signs requests; never send it)' : 'Secret'),
    code,
    h('div', { class: 'actions' }, copyButton(() => secret, 'Copy secret')));
  if (view.security_level === 'advanced') box.append(...signingHelp(view));
  return box;
}

function signingHelp(view) {
  const origin = window.location.origin;
  const example = [
    `KEY_ID='${view.id}'`,
    'SECRET="$(cat ./keymint-secret)"   # the secret above, from where you stored it',
    "BODY='grant_type=client_credentials'",
    'TS=$(date +%s%3N)                    # unix time in milliseconds',
    'NONCE=$(openssl rand -hex 16)        # 16..64 of [A-Za-z0-9_-], never reused',
    "BODY_SHA=$(printf '%s' \"$BODY\" | openssl dgst -sha256 -hex | sed 's/^.* //')",
    "SIG=$(printf '%s\\n%s\\n%s\\n%s\\n%s' \"$TS\" \"$NONCE\" POST /oauth/token \"$BODY_SHA\" \\",
    "  | openssl dgst -sha256 -hmac \"$SECRET\" -hex | sed 's/^.* //')",
    `curl -s '${origin}/oauth/token' \\`,
    '  -H "X-Keymint-Key-Id: $KEY_ID" -H "X-Keymint-Timestamp: $TS" -H "X-Keymint-Nonce: $NONCE" \\',
    '  -H "Authorization: KM-HMAC-SHA256 $SIG" \\',
    "  -H 'Content-Type: application/x-www-form-urlencoded' --data \"$BODY\"",
  ].join('\n');
  return [
    h('p', {}, 'Key id (sent with every request):'),
    h('code', { class: 'key-id' }, view.id),
    h('div', { class: 'actions' }, copyButton(view.id, 'Copy key id')),
    h('h3', {}, 'How to sign a request'),
    h('p', {}, 'An advanced key never sends its secret. Each request carries the headers ',
      h('code', {}, 'X-Keymint-Key-Id'), ', ', h('code', {}, 'X-Keymint-Timestamp'), ' (unix ms), ',
      h('code', {}, 'X-Keymint-Nonce'), ' and ', h('code', {}, 'Authorization: KM-HMAC-SHA256 <hex>'),
      ': the lowercase hex HMAC-SHA256, keyed with the whole secret, of these five fields joined by single newlines:'),
    h('ol', { class: 'signing-fields' },
      h('li', {}, 'the timestamp (unix milliseconds, within 5 minutes of the server\'s clock);'),
      h('li', {}, 'the nonce (16 to 64 characters of A–Z a–z 0–9 _ -, used once);'),
      h('li', {}, 'the method in upper case, e.g. ', h('code', {}, 'POST'), ';'),
      h('li', {}, 'the request path exactly as sent, without the query, e.g. ', h('code', {}, '/oauth/token'), ';'),
      h('li', {}, 'the lowercase hex SHA-256 of the raw body.')),
    h('p', {}, 'With curl and openssl:'),
    h('pre', { tabindex: '0', 'aria-label': 'Example: a signed token request with curl and openssl' }, h('code', {}, example)),
  ];
}

export async function render() {
  const current = session.current();
  const canWrite = session.can('admin:keys:write', current);
  const selfService = !canWrite && session.can('keys:self', current);
  const acting = session.actingTenant(current);

  // What limits the form: the tenant's policy (admin:settings) and, for
  // keys:self, the caller's own key. Neither is required: the server decides.
  const [settingsResult, ownResult] = await Promise.allSettled([
    session.can('admin:settings', current) ? api('GET', '/settings') : Promise.resolve(null),
    selfService ? api('GET', `/keys/${encodeURIComponent(current.keyId)}`) : Promise.resolve(null),
  ]);
  for (const result of [settingsResult, ownResult]) {
    if (result.status === 'rejected' && result.reason?.status === 401) throw result.reason;
  }
  const settings = settingsResult.status === 'fulfilled' ? settingsResult.value : null;
  const own = ownResult.status === 'fulfilled' ? ownResult.value : null;

  const main = page(selfService ? 'Create a key of your own' : 'Create key',
    h('a', { class: 'button-link secondary', href: '#/keys' }, selfService ? 'Back to my keys' : 'Back to keys'));

  // ---- name, description, owner
  const name = h('input', { type: 'text', maxlength: 100, required: true, autocomplete: 'off' });
  const description = h('textarea', { maxlength: 1000, rows: 2, class: 'prose' });
  const defaultOwner = /^[A-Za-z0-9@._:-]{1,200}$/.test(current.sub || '') && !current.sub.startsWith('key:') ? current.sub : null;
  const owner = h('input', { type: 'text', maxlength: 200, autocomplete: 'off', spellcheck: 'false', placeholder: defaultOwner || '' });
  const ownerBox = canWrite
    ? field('Owner', 'owner', owner, defaultOwner
      ? `Who the key belongs to (its tokens' sub). Empty: ${defaultOwner}.`
      : "Who the key belongs to (its tokens' sub). Empty: no owner (sub is key:<id>).")
    : h('div', { class: 'field', dataset: { field: 'owner' } },
      h('p', { class: 'field-label' }, 'Owner'),
      h('p', {}, current.sub, ' ', h('span', { class: 'hint' }, '(keys you create are always yours)')),
      h('p', { class: 'field-error', role: 'alert', hidden: true }));

  // ---- scopes
  const held = current.scopes;
  const ownScopes = own ? own.scopes.filter((s) => !isReserved(s)) : null;
  const scopeSuggestions = selfService
    ? (ownScopes || [])
    : held.filter((s) => isReserved(s) && (acting === SYSTEM_TENANT || !SYSTEM_ONLY.includes(s)));
  const scopes = chipField({
    label: 'Scopes',
    name: 'scopes',
    hint: selfService
      ? (ownScopes && ownScopes.length
        ? `Type a scope and press Enter or comma. You may grant the scopes your own key holds: ${ownScopes.join(', ')}.`
        : 'Type a scope and press Enter or comma. You may grant only non-admin scopes your own key holds.')
      : 'Type a scope and press Enter or comma. Admin scopes can be granted only if your key holds them.',
    suggestions: scopeSuggestions,
    check(value) {
      if (!SCOPE_SYNTAX.test(value)) {
        return `“${value}” is not a scope: use 1 to 100 of A–Z a–z 0–9 : . _ / - (no spaces).`;
      }
      if (selfService) {
        if (isReserved(value)) return `${value} is an admin scope: a keys:self key can grant only non-admin scopes.`;
        if (ownScopes && !ownScopes.includes(value)) return `Your own key does not hold ${value}, so you cannot grant it.`;
      } else if (isReserved(value)) {
        if (!held.includes(value)) return `Your key does not hold ${value}, so you cannot grant it.`;
        if (SYSTEM_ONLY.includes(value) && acting !== SYSTEM_TENANT) {
          return `${value} exists only in the system tenant “${SYSTEM_TENANT}”.`;
        }
      }
      return null;
    },
  });

  // ---- expiry
  const maxLifetime = settings?.max_key_lifetime_s ?? null;
  const ownExpiry = own?.expires_at ? new Date(own.expires_at) : null;
  const now = Date.now();
  const radios = {};
  const choices = h('div', { class: 'choices' });
  const radioName = nextId('expiry');
  for (const preset of PRESETS) {
    let reason = null;
    if (preset.seconds) {
      if (maxLifetime !== null && preset.seconds > maxLifetime) {
        reason = 'longer than the tenant allows';
      } else if (ownExpiry && now + preset.seconds * 1000 > ownExpiry.getTime()) {
        reason = 'past your own key\'s expiry';
      }
    } else if (preset.id === 'never') {
      if (maxLifetime !== null) reason = 'the tenant sets a maximum lifetime';
      else if (ownExpiry) reason = 'your own key expires';
    }
    const radio = h('input', { type: 'radio', name: radioName, value: preset.id, disabled: Boolean(reason) });
    radios[preset.id] = radio;
    choices.append(h('label', { class: reason ? 'choice disabled' : 'choice' }, radio, h('span', { class: 'choice-text' }, preset.label),
      reason ? h('span', { class: 'choice-reason' }, `(${reason})`) : null));
  }
  const initial = [
    PRESETS.find((p) => p.seconds && p.seconds === settings?.default_key_lifetime_s)?.id,
    'd90', 'd60', 'd30', 'd7',
  ].find((id) => id && !radios[id].disabled) || 'date';
  radios[initial].checked = true;

  let latest = null;
  if (maxLifetime !== null) latest = new Date(now + maxLifetime * 1000);
  if (ownExpiry && (!latest || ownExpiry < latest)) latest = ownExpiry;
  const dateInput = h('input', { type: 'date', min: localDate(new Date(now)), max: latest ? localDate(latest) : null });
  const dateBox = field('Expiry date', 'expires_at', dateInput,
    `The key expires at the end of this day (your time zone)${latest ? `, at the latest ${when(latest.toISOString())}` : ''}.`);
  dateBox.hidden = initial !== 'date';
  choices.addEventListener('change', () => {
    dateBox.hidden = !radios.date.checked;
    dateInput.required = radios.date.checked;
  });
  dateInput.required = initial === 'date';
  let expiryHint = 'When the key stops working. It can be shortened later, never extended.';
  if (maxLifetime !== null) expiryHint += ` The tenant allows at most ${duration(maxLifetime)}.`;
  if (ownExpiry) expiryHint += ` Your own key expires ${when(own.expires_at)}; a key you create cannot outlive it.`;
  const expiry = group('Expires', 'expires_in_s', [choices, dateBox], expiryHint);
  // The group's own error line goes before the date field, so that errors for
  // the group (expires_in_s, never_expires) show there and expires_at under the date.
  expiry.insertBefore(expiry.querySelector(':scope > .field-error'), dateBox);

  // ---- network, security, tokens
  const allowlist = h('textarea', { rows: 3, spellcheck: 'false', autocapitalize: 'off', placeholder: '203.0.113.0/24\n2001:db8::/32' });
  let allowHint = 'One CIDR per line (host bits clear, e.g. 10.0.0.0/8). Empty: any address.';
  if (selfService) allowHint = 'One CIDR per line, within your own key\'s list. Empty: your own key\'s list.';
  if (settings?.require_ip_allowlist) allowHint += ' The tenant requires an allow-list on every key.';
  const securityRadios = ['standard', 'advanced'].map((level) => h('input', {
    type: 'radio', name: nextId('security'), value: level, checked: level === 'standard',
  }));
  securityRadios[1].name = securityRadios[0].name;
  const security = group('Security level', 'security_level', h('div', { class: 'choices' },
    h('label', { class: 'choice' }, securityRadios[0], h('span', { class: 'choice-text' }, 'Standard'), h('span', { class: 'choice-reason' }, '(the secret is sent to get a token)')),
    h('label', { class: 'choice' }, securityRadios[1], h('span', { class: 'choice-text' }, 'Advanced'), h('span', { class: 'choice-reason' }, '(requests are signed; the secret never travels)'))));
  const ttl = h('input', { type: 'number', min: 30, max: 3600, step: 1, inputmode: 'numeric' });
  let ttlHint = 'Seconds, 30 to 3600. Empty: the tenant\'s maximum';
  if (settings) ttlHint += ` (${settings.max_token_ttl_s} s)`;
  if (selfService) ttlHint = 'Seconds, 30 to 3600, no more than your own key\'s and the tenant\'s default. Empty: that limit';
  ttlHint += '.';
  const audienceSuggestions = selfService ? (own?.audiences || []) : (settings?.audiences || []);
  const audiences = chipField({
    label: 'Audiences',
    name: 'audiences',
    hint: selfService
      ? 'The aud values its tokens may carry: only audiences your own key holds. Empty: the tenant default.'
      : 'The aud values its tokens may carry (registered in the tenant\'s settings); the first is the default. Empty: the tenant default.',
    suggestions: audienceSuggestions,
    check(value) {
      if (value.length > 200 || !/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(value)) return `“${value}” is not an absolute URI or urn:.`;
      if (selfService && own && !own.audiences.includes(value)) return `Your own key does not hold the audience ${value}.`;
      return null;
    },
  });

  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h('form', { class: 'card create-key', novalidate: true, 'aria-labelledby': 'page-title' },
    h('div', { class: 'grid2' },
      field('Name', 'name', name, '1 to 100 characters, shown in lists.'),
      ownerBox),
    field('Description', 'description', description, 'Optional, up to 1000 characters.'),
    scopes.box,
    expiry,
    field('IP allow-list', 'ip_allowlist', allowlist, allowHint),
    security,
    h('div', { class: 'grid2' },
      field('Max token TTL', 'max_token_ttl_s', ttl, ttlHint),
      audiences.box),
    formError(),
    h('div', { class: 'actions' }, submit));
  main.append(form);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const problems = [];
    if (!name.value.trim()) problems.push({ field: 'name', message: 'Give the key a name.' });
    const chosen = Object.values(radios).find((r) => r.checked)?.value;
    if (chosen === 'date' && !dateInput.value) problems.push({ field: 'expires_at', message: 'Pick the day the key expires.' });
    const ttlValue = ttl.value.trim();
    if (ttlValue && !(/^\d+$/.test(ttlValue) && Number(ttlValue) >= 30 && Number(ttlValue) <= 3600)) {
      problems.push({ field: 'max_token_ttl_s', message: 'A whole number of seconds from 30 to 3600.' });
    }
    if (problems.length) {
      showError(form, { errors: problems });
      return;
    }
    // What is still typed in a chip input counts (and may be refused there).
    if (!scopes.flush() || !audiences.flush()) {
      form.querySelector('[aria-invalid="true"]')?.focus();
      return;
    }

    const body = { name: name.value.trim() };
    if (description.value.trim()) body.description = description.value.trim();
    if (canWrite && owner.value.trim()) body.owner = owner.value.trim();
    body.scopes = scopes.values();
    const preset = PRESETS.find((p) => p.id === chosen);
    if (preset?.seconds) {
      body.expires_in_s = preset.seconds;
    } else if (chosen === 'never') {
      body.never_expires = true;
    } else if (chosen === 'date') {
      const [y, m, d] = dateInput.value.split('-').map(Number);
      let at = new Date(y, m - 1, d, 23, 59, 59);
      if (latest && at > latest) at = latest;
      body.expires_at = at.toISOString();
    }
    const cidrs = lines(allowlist.value);
    if (cidrs.length) body.ip_allowlist = cidrs;
    body.security_level = securityRadios[1].checked ? 'advanced' : 'standard';
    if (ttlValue) body.max_token_ttl_s = Number(ttlValue);
    const auds = audiences.values();
    if (auds.length) body.audiences = auds;

    submit.disabled = true;
    try {
      const created = await api('POST', '/keys', { body });
      showCreated(created);
    } catch (error) {
      if (error.status === 401) return;
      showApiError(form, error, { never_expires: 'expires_in_s' });
    } finally {
      submit.disabled = false;
    }
  });
  name.focus();
}

/** The result: the secret once, what was made, where to go next. */
function showCreated(created) {
  const { key: secret, ...view } = created;
  const main = page(`Key “${view.name}” created`,
    h('a', { class: 'button-link secondary', href: '#/keys' }, 'Back to keys'));
  const again = h('button', { type: 'button', class: 'secondary' }, 'Create another key');
  again.addEventListener('click', () => render());
  main.append(
    secretBox(view, secret),
    h('section', { class: 'card created-summary', 'aria-labelledby': 'created-summary' },
      h('h2', { id: 'created-summary' }, 'The new key'),
      h('dl', { class: 'props' },
        h('dt', {}, 'Key id'), h('dd', {}, h('code', {}, view.id)),
        h('dt', {}, 'Starts with'), h('dd', {}, h('code', {}, `${view.start}…`)),
        h('dt', {}, 'Owner'), h('dd', {}, view.owner || '—'),
        h('dt', {}, 'Scopes'), h('dd', {}, view.scopes.length ? view.scopes.join(' ') : '—'),
        h('dt', {}, 'Security level'), h('dd', {}, view.security_level),
        h('dt', {}, 'Expires'), h('dd', {}, view.expires_at ? when(view.expires_at) : 'never')),
      h('div', { class: 'actions' },
        h('a', { class: 'button-link primary', href: `#/keys/${encodeURIComponent(view.id)}` }, 'Open the key page'),
        again)));
  document.getElementById('page-title')?.focus({ preventScroll: false });
}

export { MAX_GRACE_S };
