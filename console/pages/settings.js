// Tenant settings: the acting tenant's policy as one form. Save sends a
// merge patch of the changed members only; a change that would lock out the
// signed-in key is explained and applied only after a second confirmation.

import { api } from '../api.js';
import { h, field, page, notify, showError, clearErrors, formError, confirmDialog, nextId } from '../dom.js';
import { when, duration } from '../format.js';
import * as session from '../session.js';

const FORCE_HINT = /;?\s*send "force": true to apply it anyway\.?$/;

/** The server's lock-out reasons (tenants::policy::locks_out) in plain words. */
const LOCKOUT_REASONS = [
  [/^api_keys_enabled=false/, 'turning API keys off refuses every request made with this tenant\'s keys, yours included: this console session stops working the moment the change is saved, and no key of this tenant can exchange tokens until someone turns them back on'],
  [/^require_ip_allowlist/, 'keys without an IP allow-list can no longer exchange tokens, and the key you are signed in with has none: this session lasts until its token expires, but you could not sign in with that key again'],
  [/^allowed_ip_ranges/, 'the address you are connecting from is outside the new allowed IP ranges, so the key you are signed in with could no longer be used from here'],
];

export async function render() {
  const current = session.current();
  const main = page('Settings');
  const view = await api('GET', '/settings');
  let loaded = view;

  const intro = h('p', { class: 'hint' });
  const controls = {
    api_keys_enabled: h('input', { type: 'checkbox' }),
    default_key_lifetime_s: seconds({ min: 60, placeholder: 'none' }),
    max_key_lifetime_s: seconds({ min: 60, placeholder: 'unlimited' }),
    max_keys_per_owner: h('input', { type: 'number', min: 1, max: 1000, step: 1, required: true }),
    default_token_ttl_s: seconds({ min: 30, max: 3600, required: true }),
    max_token_ttl_s: seconds({ min: 30, max: 3600, required: true }),
    require_ip_allowlist: h('input', { type: 'checkbox' }),
    allowed_ip_ranges: h('textarea', { rows: 3, spellcheck: 'false', placeholder: '10.0.0.0/8' }),
    audiences: h('textarea', { rows: 3, spellcheck: 'false', placeholder: 'https://api.example.com' }),
    default_audience: h('input', { type: 'text', spellcheck: 'false', maxlength: 200, required: true }),
    default_rate_limit_per_s: h('input', { type: 'number', min: 0, step: 'any', required: true }),
    expiry_warning_days: h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', inputmode: 'numeric', placeholder: '30, 7, 1' }),
    leak_response: h('select', {},
      h('option', { value: 'revoke' }, 'Revoke the key at once'),
      h('option', { value: 'notify' }, 'Only report it (the key keeps working)')),
  };

  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
  const reset = h('button', { type: 'button', class: 'secondary' }, 'Discard changes');
  const lockout = h('div', { class: 'lockout', role: 'alert', hidden: true });
  const form = h('form', { class: 'settings-form', novalidate: true },
    h('fieldset', {},
      h('legend', {}, 'API keys'),
      checkbox('API keys enabled', 'api_keys_enabled', controls.api_keys_enabled,
        'Off: every token exchange fails, and so does every admin request from this tenant\'s keys.'),
      h('div', { class: 'grid2' },
        field('Default key lifetime (seconds)', 'default_key_lifetime_s', controls.default_key_lifetime_s,
          reading(controls.default_key_lifetime_s, 'Empty: new keys get the maximum lifetime, or never expire.')),
        field('Maximum key lifetime (seconds)', 'max_key_lifetime_s', controls.max_key_lifetime_s,
          reading(controls.max_key_lifetime_s, 'Empty: unlimited (keys may be created that never expire). New keys only.'))),
      field('Keys per owner', 'max_keys_per_owner', controls.max_keys_per_owner,
        '1 to 1000 keys that are not revoked, expired or deleted.')),
    h('fieldset', {},
      h('legend', {}, 'Tokens'),
      h('div', { class: 'grid2' },
        field('Default token lifetime (seconds)', 'default_token_ttl_s', controls.default_token_ttl_s,
          reading(controls.default_token_ttl_s, '30 to 3600; when a request names no expires_in.')),
        field('Maximum token lifetime (seconds)', 'max_token_ttl_s', controls.max_token_ttl_s,
          reading(controls.max_token_ttl_s, '30 to 3600.'))),
      field('Default rate limit (tokens per second per key)', 'default_rate_limit_per_s',
        controls.default_rate_limit_per_s, 'For keys that set no rate limit of their own.')),
    h('fieldset', {},
      h('legend', {}, 'Addresses'),
      checkbox('Require an IP allow-list on every key', 'require_ip_allowlist', controls.require_ip_allowlist,
        'Keys without a list cannot be created, and existing ones stop exchanging.'),
      field('Allowed IP ranges', 'allowed_ip_ranges', controls.allowed_ip_ranges,
        'One CIDR per line (host bits clear). Empty: any address.')),
    h('fieldset', {},
      h('legend', {}, 'Audiences'),
      field('Registered audiences', 'audiences', controls.audiences,
        'One per line: absolute URIs or urn: names. The default audience is always registered; an audience a live key holds cannot be removed.'),
      field('Default audience', 'default_audience', controls.default_audience,
        'For tokens whose key names no audience.')),
    h('fieldset', {},
      h('legend', {}, 'Security events'),
      h('div', { class: 'grid2' },
        field('Expiry warnings (days before expiry)', 'expiry_warning_days', controls.expiry_warning_days,
          'Whole days from 1 to 3650, separated by commas, at most 10: a key-expiring event is sent when a key gets this close to its expiry. Empty: no warnings.'),
        field('When a key\'s secret is reported leaked', 'leak_response', controls.leak_response,
          'A code host\'s leak report is always written to the audit log and sent as a key-leaked event; revoking also stops the key.'))),
    lockout,
    formError(),
    h('div', { class: 'actions' }, submit, reset));

  main.append(intro, form);

  function fill(v) {
    loaded = v;
    intro.textContent = `Policy of tenant ${v.tenant}. Last changed ${when(v.updated_at)}.`;
    controls.api_keys_enabled.checked = v.api_keys_enabled;
    controls.require_ip_allowlist.checked = v.require_ip_allowlist;
    for (const name of ['default_key_lifetime_s', 'max_key_lifetime_s', 'max_keys_per_owner',
      'default_token_ttl_s', 'max_token_ttl_s', 'default_rate_limit_per_s', 'default_audience']) {
      controls[name].value = v[name] === null || v[name] === undefined ? '' : String(v[name]);
    }
    controls.allowed_ip_ranges.value = v.allowed_ip_ranges.join('\n');
    controls.audiences.value = v.audiences.join('\n');
    controls.expiry_warning_days.value = (v.expiry_warning_days || []).join(', ');
    controls.leak_response.value = v.leak_response || 'revoke';
    for (const input of Object.values(controls)) input.dispatchEvent(new Event('input'));
    hideLockout();
  }

  /** The changed members, or {errors} for values that are not numbers at all. */
  function changes() {
    const patch = {};
    const errors = [];
    const number = (name, nullable) => {
      const raw = controls[name].value.trim();
      if (raw === '') {
        if (nullable) return null;
        errors.push({ field: name, message: 'Enter a number.' });
        return undefined;
      }
      const n = Number(raw);
      if (!Number.isFinite(n)) {
        errors.push({ field: name, message: 'Enter a number.' });
        return undefined;
      }
      return n;
    };
    const bools = ['api_keys_enabled', 'require_ip_allowlist'];
    for (const name of bools) {
      if (controls[name].checked !== loaded[name]) patch[name] = controls[name].checked;
    }
    for (const [name, nullable] of [['default_key_lifetime_s', true], ['max_key_lifetime_s', true],
      ['max_keys_per_owner', false], ['default_token_ttl_s', false], ['max_token_ttl_s', false],
      ['default_rate_limit_per_s', false]]) {
      const value = number(name, nullable);
      if (value !== undefined && value !== loaded[name]) patch[name] = value;
    }
    const ranges = lines(controls.allowed_ip_ranges.value);
    if (!sameList(ranges, loaded.allowed_ip_ranges)) patch.allowed_ip_ranges = ranges;
    const audiences = lines(controls.audiences.value);
    if (!sameList([...audiences].sort(), [...loaded.audiences].sort())) patch.audiences = audiences;
    const audience = controls.default_audience.value.trim();
    if (audience !== loaded.default_audience) patch.default_audience = audience;
    const days = warningDays(controls.expiry_warning_days.value);
    if (!days) {
      errors.push({ field: 'expiry_warning_days', message: 'Enter whole numbers of days separated by commas, e.g. 30, 7, 1.' });
    } else if (!sameList(days, loaded.expiry_warning_days || [])) {
      patch.expiry_warning_days = days;
    }
    if (controls.leak_response.value !== loaded.leak_response) patch.leak_response = controls.leak_response.value;
    return { patch, errors };
  }

  async function save(force) {
    clearErrors(form);
    const { patch, errors } = changes();
    if (errors.length) {
      showError(form, { message: 'Some values need fixing.', errors });
      return;
    }
    if (!Object.keys(patch).length) {
      hideLockout();
      notify('Nothing changed.', 'info');
      return;
    }
    if (force) patch.force = true;
    submit.disabled = true;
    try {
      const saved = await api('PATCH', '/settings', { body: patch, contentType: 'application/merge-patch+json' });
      fill(saved);
      notify(force
        ? 'Saved with force. The key you are signed in with is now locked out as explained.'
        : `Saved: ${Object.keys(patch).filter((k) => k !== 'force').join(', ')}.`, 'success');
    } catch (error) {
      if (error.status === 401) return;
      if (error.status === 422 && error.errors.some((e) => e.field === 'force')) {
        showLockout(error);
      } else if (error.status === 409 && !error.errors.length && /audience/.test(error.message)) {
        // An audience registered to another tenant: a conflict about that field.
        hideLockout();
        showError(form, { message: error.message, errors: [{ field: 'audiences', message: error.message }] });
      } else {
        hideLockout();
        showError(form, error);
      }
    } finally {
      submit.disabled = false;
    }
  }

  function showLockout(error) {
    const detail = (error.problem?.detail || '').replace(FORCE_HINT, '');
    const plain = LOCKOUT_REASONS.find(([re]) => re.test(detail))?.[1] || detail;
    const who = current.keyName ? `${current.keyName} (${current.keyId})` : current.keyId;
    const forceButton = h('button', { type: 'button', class: 'danger' }, 'Save anyway (force)');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Keep editing');
    lockout.replaceChildren(
      h('h2', {}, 'This change would lock you out'),
      h('p', {}, `This change would lock out the key you are signed in with, ${who}, because ${plain}.`),
      h('p', { class: 'hint' }, 'Nothing was saved. If you apply it, undoing it may take another administrator of this tenant, a root administrator acting in it, or ',
        h('code', {}, 'keymint settings set'), ' on the server.'),
      h('div', { class: 'actions' }, forceButton, cancel));
    lockout.hidden = false;
    forceButton.addEventListener('click', async () => {
      const answer = await confirmDialog({
        title: 'Lock yourself out?',
        body: [
          h('p', {}, `Saving with force applies the change although ${plain}.`),
          h('p', {}, 'Are you sure you want to save it anyway?'),
        ],
        confirmLabel: 'Yes, save and lock me out',
        danger: true,
      });
      if (answer) await save(true);
      else forceButton.focus();
    });
    cancel.addEventListener('click', () => {
      hideLockout();
      form.querySelector('input, textarea')?.focus();
    });
    forceButton.focus();
  }

  function hideLockout() {
    lockout.hidden = true;
    lockout.replaceChildren();
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    save(false);
  });
  reset.addEventListener('click', () => {
    clearErrors(form);
    fill(loaded);
  });

  fill(view);
}

function seconds(attrs) {
  return h('input', { type: 'number', step: 1, ...attrs });
}

/** A hint whose first part reads the seconds in `input` as words. */
function reading(input, text) {
  const out = h('span', { class: 'reading' });
  const update = () => {
    const raw = input.value.trim();
    const n = Number(raw);
    out.textContent = raw === '' ? '' : Number.isInteger(n) && n >= 0 ? `= ${duration(n)}. ` : '';
  };
  input.addEventListener('input', update);
  return [out, text];
}

/** A labelled checkbox that can show an error under it, like field(). */
function checkbox(label, name, input, hint) {
  const id = nextId(name);
  input.id = id;
  input.name = name;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  input.setAttribute('aria-describedby', `${hintId} ${errorId}`);
  return h('div', { class: 'field checkbox', dataset: { field: name } },
    h('label', { for: id }, input, ` ${label}`),
    h('p', { class: 'hint', id: hintId }, hint),
    h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true }));
}

/**
 * "7, 30 1" → [30, 7, 1]: distinct, largest first, as the server stores
 * them; null when a part is not a whole number (the range is the server's).
 */
function warningDays(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (!parts.every((p) => /^\d{1,9}$/.test(p))) return null;
  return [...new Set(parts.map(Number))].sort((a, b) => b - a);
}

function lines(text) {
  return text.split('\n').map((s) => s.trim()).filter(Boolean);
}

function sameList(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
