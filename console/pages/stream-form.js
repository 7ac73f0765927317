// The event-stream form, shared by registering a stream (events.js) and
// changing one (stream.js), and the event names both pages show.

import { h, field, formError, nextId } from '../dom.js';
import { group } from './create.js';

export const EVENT_PREFIX = 'urn:keymint:event:';

/** keymint's events (src/domain/events.rs): [short name, what it reports]. */
export const EVENTS = [
  ['key-created', 'a key was created'],
  ['key-revoked', 'a key was revoked'],
  ['key-rotated', 'a key\'s secret was rotated'],
  ['key-deleted', 'a key was deleted'],
  ['key-expiring', 'a key is a warning period away from expiry'],
  ['key-leaked', 'a key\'s secret was reported found in public'],
  ['tenant-api-keys-disabled', 'the tenant turned API keys off'],
  ['tenant-api-keys-enabled', 'the tenant turned API keys on'],
  ['signing-key-rotated', 'the server\'s signing key was rotated'],
  ['signing-key-revoked', 'a signing key was revoked'],
];

const SECRET_MIN = 16;
const SECRET_MAX = 512;
const SECRET_SYNTAX = /^[\x21-\x7e]+$/;

/** "urn:keymint:event:key-revoked" → "key-revoked" (other URIs as they are). */
export function eventName(uri) {
  return typeof uri === 'string' && uri.startsWith(EVENT_PREFIX) ? uri.slice(EVENT_PREFIX.length) : String(uri);
}

/** A stream's events as chips, or "all events". */
export function eventsList(events) {
  if (!events) return h('span', { class: 'all-events' }, 'all events');
  return h('ul', { class: 'chips plain' }, events.map((uri) => h('li', { class: 'chip', title: uri }, eventName(uri))));
}

/** A labelled checkbox whose API errors show under it (like field()). */
export function checkField(label, name, input, hint) {
  const id = nextId(name);
  input.id = id;
  input.name = name;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  input.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h('div', { class: 'field checkbox', dataset: { field: name } },
    h('label', { for: id }, input, ` ${label}`),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true }));
}

/**
 * The form for a new stream (`view` null) or for changing `view`.
 * Returns {form, submit, read}: read() → {body, errors}, where body is the
 * whole create request, or for a change only the members that differ.
 */
export function streamForm(view, { title, submitLabel, cancel }) {
  const endpoint = h('input', {
    type: 'url', maxlength: 2048, spellcheck: 'false', autocomplete: 'off', required: true,
    placeholder: 'https://receiver.example.com/events', value: view?.endpoint || '',
  });
  const audience = h('input', {
    type: 'text', maxlength: 200, spellcheck: 'false', autocomplete: 'off', required: true,
    placeholder: 'https://receiver.example.com', value: view?.audience || '',
  });

  // Events: all (the default, and any added later) or the ones ticked.
  const allEvents = h('input', { type: 'checkbox', checked: !view || !view.events });
  const chosen = new Set(view?.events || []);
  const boxes = EVENTS.map(([name, what]) => {
    const uri = `${EVENT_PREFIX}${name}`;
    const box = h('input', { type: 'checkbox', name: 'event', value: uri, checked: chosen.has(uri) });
    return { uri, box, label: h('label', { class: 'choice' }, box, h('span', { class: 'choice-text' }, name), ' ',
      h('span', { class: 'choice-reason' }, `(${what})`)) };
  });
  const list = h('div', { class: 'choices event-choices', id: nextId('event-choices'), hidden: allEvents.checked },
    boxes.map((b) => b.label));
  allEvents.setAttribute('aria-controls', list.id);
  allEvents.addEventListener('change', () => {
    list.hidden = allEvents.checked;
    if (!allEvents.checked) boxes[0].box.focus();
  });
  const eventsGroup = group('Events', 'events', [
    h('label', { class: 'choice all-choice' }, allEvents,
      h('span', { class: 'choice-text' }, 'All events'), ' ', h('span', { class: 'choice-reason' }, '(including any added later)')),
    list,
  ], 'Untick "All events" to choose: only the ticked events are sent.');

  const enabled = h('input', { type: 'checkbox', checked: view ? view.enabled : true });

  // The bearer secret: never shown back, so a change is keep, replace or remove.
  const secret = h('input', {
    type: 'password', maxlength: SECRET_MAX, autocomplete: 'new-password', spellcheck: 'false',
  });
  const secretHint = `${SECRET_MIN} to ${SECRET_MAX} printable ASCII characters without spaces, sent as "Authorization: Bearer …" with every event. It is never shown again.`;
  let secretChoice = null;
  let secretBox;
  if (!view) {
    secretBox = field('Bearer secret (optional)', 'bearer_secret', secret, secretHint);
  } else {
    const choiceName = nextId('secret-choice');
    const options = view.has_bearer_secret
      ? [['keep', 'Keep the current secret'], ['replace', 'Replace it'], ['remove', 'Remove it (no Authorization header)']]
      : [['keep', 'No secret'], ['replace', 'Set one']];
    const radios = options.map(([value], i) => h('input', { type: 'radio', name: choiceName, value, checked: i === 0 }));
    secretChoice = () => radios.find((r) => r.checked)?.value || 'keep';
    const newSecret = field('New bearer secret', 'bearer_secret', secret, secretHint);
    newSecret.hidden = true;
    const choices = h('div', { class: 'choices' }, options.map(([, label], i) => h('label', { class: 'choice' }, radios[i],
      h('span', { class: 'choice-text' }, label))));
    choices.addEventListener('change', () => {
      newSecret.hidden = secretChoice() !== 'replace';
      if (!newSecret.hidden) secret.focus();
    });
    secretBox = [group('Bearer secret', 'bearer_secret_choice', choices,
      view.has_bearer_secret ? 'The stream has a secret; it is not shown.' : 'The stream sends no Authorization header.'), newSecret];
  }

  const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const titleId = nextId('stream-form-title');
  const form = h('form', { class: 'card stream-form', novalidate: true, 'aria-labelledby': titleId },
    h('h2', { id: titleId }, title),
    h('div', { class: 'grid2' },
      field('Endpoint', 'endpoint', endpoint,
        'The receiver\'s URL; each event is POSTed to it as a signed SET (RFC 8935). https on a public address.'),
      field('Audience', 'audience', audience,
        'The "aud" of every event sent there: an absolute URI or a urn: name the receiver expects.')),
    eventsGroup,
    checkField('Enabled', 'enabled', enabled,
      'While a stream is disabled no events are queued for it; they are not sent later.'),
    secretBox,
    formError(),
    h('div', { class: 'actions' }, submit,
      cancel ? h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel') : null));

  function read() {
    const errors = [];
    const wanted = {
      endpoint: endpoint.value.trim(),
      audience: audience.value.trim(),
      events: allEvents.checked ? null : boxes.filter((b) => b.box.checked).map((b) => b.uri),
      enabled: enabled.checked,
    };
    if (!wanted.endpoint) errors.push({ field: 'endpoint', message: 'Enter the receiver\'s URL.' });
    if (!wanted.audience) errors.push({ field: 'audience', message: 'Enter the audience the receiver expects.' });
    if (wanted.events && !wanted.events.length) {
      errors.push({ field: 'events', message: 'Tick at least one event, or "All events".' });
    }
    const choice = secretChoice ? secretChoice() : (secret.value ? 'replace' : 'keep');
    if (choice === 'replace') {
      const s = secret.value;
      if (s.length < SECRET_MIN || s.length > SECRET_MAX || !SECRET_SYNTAX.test(s)) {
        errors.push({ field: 'bearer_secret', message: `Must be ${SECRET_MIN} to ${SECRET_MAX} printable ASCII characters without spaces.` });
      }
    }
    if (!view) {
      const body = { ...wanted };
      if (choice === 'replace') body.bearer_secret = secret.value;
      return { body, errors };
    }
    const body = {};
    for (const name of ['endpoint', 'audience', 'enabled']) {
      if (wanted[name] !== view[name]) body[name] = wanted[name];
    }
    const sorted = (list) => (list ? [...list].sort() : null);
    if (JSON.stringify(sorted(wanted.events)) !== JSON.stringify(sorted(view.events))) body.events = wanted.events;
    if (choice === 'replace') body.bearer_secret = secret.value;
    if (choice === 'remove') body.bearer_secret = null;
    return { body, errors };
  }

  /** Forgets a typed secret (after a save, or when the form goes). */
  function wipe() {
    secret.value = '';
  }

  return { form, submit, read, wipe };
}
