// The signed-in session: an admin-audience access token and what it says.
// The API key used to get it is never stored; the token lives in
// sessionStorage (this tab only) until it expires or the user signs out.

const STORAGE = 'keymint.session';
const listeners = new Set();
let timer = null;

/** Settings the server wrote into the page. */
export const server = {
  issuer: meta('keymint-issuer'),
  adminAudience: meta('keymint-admin-audience'),
  /** statuslist.ttl_s: how long verifiers may cache a status list. */
  statusListTtl: Number(meta('keymint-statuslist-ttl')) || 30,
};

/** What a revocation means for tokens already issued, in words. */
export function revocationReach() {
  return `Tokens already issued are refused at once by introspection, and by offline verifiers `
    + `that check the status list within ${server.statusListTtl} s.`;
}

function meta(name) {
  return document.querySelector(`meta[name="${name}"]`)?.content || '';
}

/** The claims of a JWT (unverified: the server verifies it on every call). */
export function decodeJwt(token) {
  const [header, payload] = token.split('.').slice(0, 2).map((part) => {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  });
  return { header, payload };
}

/** The current session, or null (an expired one is dropped). */
export function current() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(STORAGE) || 'null');
  } catch {
    session = null;
  }
  if (session && session.exp * 1000 <= Date.now()) {
    end('Your session expired. Sign in again to go on.');
    return null;
  }
  return session;
}

/** Starts a session from a token response; the key is not kept. */
export function start(accessToken, keyName) {
  const { payload } = decodeJwt(accessToken);
  const session = {
    token: accessToken,
    exp: payload.exp,
    keyId: payload.client_id,
    keyName: keyName || null,
    sub: payload.sub,
    tenant: payload.tid,
    scopes: (payload.scope || '').split(' ').filter(Boolean),
    actingTenant: null,
  };
  save(session);
  return session;
}

export function save(session) {
  sessionStorage.setItem(STORAGE, JSON.stringify(session));
  schedule(session);
  for (const fn of listeners) fn(session);
}

/** Ends the session; `reason` is shown on the sign-in page. */
export function end(reason) {
  sessionStorage.removeItem(STORAGE);
  if (reason) sessionStorage.setItem(`${STORAGE}.reason`, reason);
  clearTimeout(timer);
  timer = null;
  for (const fn of listeners) fn(null);
}

/** Why the last session ended, once. */
export function takeReason() {
  const reason = sessionStorage.getItem(`${STORAGE}.reason`);
  sessionStorage.removeItem(`${STORAGE}.reason`);
  return reason;
}

export function onChange(fn) {
  listeners.add(fn);
}

function schedule(session) {
  clearTimeout(timer);
  if (!session) return;
  const ms = session.exp * 1000 - Date.now();
  // setTimeout holds at most about 24.8 days; tokens live an hour at most.
  timer = setTimeout(() => end('Your session expired. Sign in again to go on.'), Math.max(0, ms));
}

/** Whether the session's token holds `scope` (write implies read). */
export function can(scope, session = current()) {
  if (!session) return false;
  if (session.scopes.includes(scope)) return true;
  return scope === 'admin:keys:read' && session.scopes.includes('admin:keys:write');
}

/** Root admins (system tenant, admin:tenants) may act in other tenants. */
export function isRoot(session = current()) {
  return Boolean(session && session.tenant === 'default' && session.scopes.includes('admin:tenants'));
}

/** The tenant the console acts in: X-Tenant when a root admin chose one. */
export function actingTenant(session = current()) {
  return session?.actingTenant || session?.tenant || '';
}

/** Whether the session may read keys at all, and which ones. */
export function keyAccess(session = current()) {
  if (can('admin:keys:read', session)) return 'all';
  if (can('keys:self', session)) return 'own';
  return 'none';
}

const current0 = current();
if (current0) schedule(current0);
