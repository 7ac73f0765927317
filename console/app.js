// The console's shell: a hash router (so the server serves one page), the
// header with who is signed in, and the navigation the token's scopes allow.

import { h, mount, notify } from './dom.js';
import * as session from './session.js';

/** [pattern, module, scope test]; ":id" captures one segment. */
const ROUTES = [
  ['/sign-in', './pages/signin.js', () => true],
  ['/keys', './pages/keys.js', (s) => session.keyAccess(s) !== 'none'],
  ['/keys/new', './pages/create.js', (s) => session.can('admin:keys:write', s) || session.can('keys:self', s)],
  ['/keys/:id', './pages/key.js', (s) => session.keyAccess(s) !== 'none'],
  ['/audit', './pages/audit.js', (s) => session.can('admin:audit', s)],
  ['/events', './pages/events.js', (s) => session.can('admin:events', s)],
  ['/events/:id', './pages/stream.js', (s) => session.can('admin:events', s)],
  ['/settings', './pages/settings.js', (s) => session.can('admin:settings', s)],
  ['/tenants', './pages/tenants.js', (s) => session.can('admin:tenants', s)],
  ['/signing-keys', './pages/signing.js', (s) => session.can('admin:signing-keys', s)],
  ['/try', './pages/try.js', () => true],
];

const NAV = [
  ['#/keys', 'Keys', (s) => session.keyAccess(s) !== 'none'],
  ['#/audit', 'Audit log', (s) => session.can('admin:audit', s)],
  ['#/events', 'Events', (s) => session.can('admin:events', s)],
  ['#/settings', 'Settings', (s) => session.can('admin:settings', s)],
  ['#/tenants', 'Tenants', (s) => session.can('admin:tenants', s)],
  ['#/signing-keys', 'Signing keys', (s) => session.can('admin:signing-keys', s)],
  ['#/try', 'Try it', () => true],
];

/** Navigates to a console path ("/keys/abc?x=1"). */
export function go(path) {
  const target = `#${path}`;
  if (window.location.hash === target) {
    route();
  } else {
    window.location.hash = target;
  }
}

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, queryString = ''] = raw.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(queryString)) };
}

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const [pattern, module, allowed] of ROUTES) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    const ok = want.every((segment, i) => {
      if (segment.startsWith(':')) {
        params[segment.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      }
      return segment === parts[i];
    });
    if (ok) return { module, allowed, params };
  }
  return null;
}

function home(current) {
  return session.keyAccess(current) !== 'none' ? '/keys' : '/try';
}

let rendering = 0;

async function route() {
  const ticket = ++rendering;
  const { path, query } = parseHash();
  const current = session.current();
  if (!current && path !== '/sign-in') {
    window.location.replace('#/sign-in');
    return;
  }
  if (current && (path === '/' || path === '/sign-in')) {
    window.location.replace(`#${home(current)}`);
    return;
  }
  renderHeader(current, path);
  const found = match(path);
  if (!found) {
    notFound(path);
    return;
  }
  if (current && !found.allowed(current)) {
    mount(document.getElementById('main'),
      h('h1', { tabindex: '-1', id: 'page-title' }, 'Not available'),
      h('p', {}, 'The signed-in key does not hold the scope this page needs.'));
    return;
  }
  try {
    const module = await import(found.module);
    if (ticket !== rendering) return;
    await module.render(found.params, query);
  } catch (error) {
    if (ticket !== rendering) return;
    if (error?.status === 401) return; // the session ended; the listener re-routes
    mount(document.getElementById('main'),
      h('h1', { tabindex: '-1', id: 'page-title' }, 'Something went wrong'),
      h('p', { class: 'form-error', role: 'alert' }, error?.message || String(error)));
  }
  // Move focus to the new page (for keyboard and screen-reader users),
  // unless the page already put it somewhere useful, like a form field.
  const main = document.getElementById('main');
  const placed = main.contains(document.activeElement) && document.activeElement !== main;
  if (ticket === rendering && !placed) document.getElementById('page-title')?.focus({ preventScroll: true });
}

function notFound(path) {
  document.title = 'Not found · keymint';
  mount(document.getElementById('main'),
    h('h1', { tabindex: '-1', id: 'page-title' }, 'Not found'),
    h('p', {}, `There is no page at ${path}. `, h('a', { href: '#/' }, 'Go to the start.')));
}

function renderHeader(current, path) {
  const top = document.getElementById('top');
  if (!current) {
    mount(top, h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'keymint'));
    return;
  }
  const links = NAV.filter(([, , allowed]) => allowed(current)).map(([href, label]) => {
    const active = path === href.slice(1) || path.startsWith(`${href.slice(1)}/`);
    return h('li', {}, h('a', { href, 'aria-current': active ? 'page' : null }, label));
  });
  const acting = session.actingTenant(current);
  mount(top,
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'keymint'),
    h('nav', { 'aria-label': 'Main' }, h('ul', {}, links)),
    acting !== current.tenant
      ? h('p', { class: 'acting' }, 'Acting in tenant ', h('strong', {}, acting), ' ',
        h('button', { type: 'button', class: 'secondary', onclick: backHome }, `Back to ${current.tenant}`))
      : null,
    h('div', { class: 'who' },
      h('details', { class: 'who-details' },
        h('summary', {}, h('span', { class: 'who-name' }, current.keyName || current.keyId),
          ' · ', h('span', { class: 'who-tenant' }, acting)),
        h('dl', { class: 'who-list' },
          h('dt', {}, 'Key'), h('dd', {}, current.keyName ? `${current.keyName} (${current.keyId})` : current.keyId),
          h('dt', {}, 'Tenant'), h('dd', {}, current.tenant),
          acting !== current.tenant ? [h('dt', {}, 'Acting in'), h('dd', {}, acting)] : null,
          h('dt', {}, 'Scopes'), h('dd', {}, current.scopes.join(' ') || '—'),
          h('dt', {}, 'Session ends'), h('dd', {}, new Date(current.exp * 1000).toLocaleTimeString()))),
      h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out')));
}

/** Leaves the tenant a root admin chose; the listener below re-renders. */
function backHome() {
  const current = session.current();
  if (current) session.save({ ...current, actingTenant: null });
}

function signOut() {
  session.end(null);
  notify('Signed out. The token was removed from this tab.', 'info');
}

let actingShown = session.actingTenant();
session.onChange((current) => {
  const acting = current ? session.actingTenant(current) : '';
  // A sign-in is not a switch: only a change within one session is.
  const switched = Boolean(current) && actingShown !== '' && acting !== actingShown;
  actingShown = acting;
  if (!current && parseHash().path !== '/sign-in') {
    window.location.replace('#/sign-in');
  } else if (!current) {
    route();
  } else if (switched) {
    // Another tenant: pages showing tenant data start over (one key's page
    // belongs to the old tenant, so its list is shown instead).
    if (parseHash().path.startsWith('/keys/')) go('/keys'); else route();
  }
});

document.querySelector('a.skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  document.getElementById('main').focus();
});

window.addEventListener('hashchange', route);
route();
