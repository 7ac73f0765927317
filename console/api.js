// The admin API client. Every call the console makes goes through here, to
// the same public endpoints curl would use.

import * as session from './session.js';

/** An API refusal: `message` for people, `errors` naming fields. */
export class ApiError extends Error {
  constructor(status, body, headers) {
    const problem = body && typeof body === 'object' ? body : {};
    super(describe(status, problem, headers));
    this.status = status;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem;
  }
}

function describe(status, problem, headers) {
  if (status === 403) {
    const needed = /scope="([^"]+)"/.exec(headers?.get('WWW-Authenticate') || '')?.[1];
    const base = problem.detail || 'This key may not do that.';
    return needed ? `${base} (needs ${needed})` : base;
  }
  if (status === 429) return 'Too many requests: wait a moment and try again.';
  return problem.detail || problem.error_description || problem.title || problem.error
    || `The server answered ${status}.`;
}

async function parse(response) {
  const type = response.headers.get('Content-Type') || '';
  if (response.status === 204) return null;
  if (type.includes('json')) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * Calls the admin API as the signed-in session.
 * api('GET', '/keys', {query: {q: 'x'}}) → parsed JSON
 */
export async function api(method, path, { body, query, noTenant = false, contentType } = {}) {
  const current = session.current();
  if (!current) {
    throw new ApiError(401, { detail: 'Not signed in.' });
  }
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const headers = { Authorization: `Bearer ${current.token}`, Accept: 'application/json' };
  if (current.actingTenant && !noTenant) headers['X-Tenant'] = current.actingTenant;
  if (body !== undefined) headers['Content-Type'] = contentType || 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { detail: 'The server could not be reached.' });
  }
  const data = await parse(response);
  if (response.status === 401) {
    session.end('Your session has ended (the token expired or its key was revoked). Sign in again.');
    throw new ApiError(401, data, response.headers);
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers);
  return data;
}

/** Every page of a list, following next_cursor (for small lists only). */
export async function all(path, query = {}, limit = 1000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api('GET', path, { query: { ...query, limit: 200, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < limit);
  return items;
}

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

function nonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The signed-request headers (DESIGN §6) for an advanced key: HMAC-SHA256,
 * keyed with the whole secret, over timestamp, nonce, method, path and the
 * body's SHA-256. The secret never leaves the browser.
 */
export async function signedHeaders(keyId, secret, method, path, body) {
  const timestamp = String(Date.now());
  const n = nonce();
  const bodyHash = hex(await crypto.subtle.digest('SHA-256', encoder.encode(body)));
  const message = [timestamp, n, method.toUpperCase(), path, bodyHash].join('\n');
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const signature = hex(await crypto.subtle.sign('HMAC', key, encoder.encode(message)));
  return {
    'X-Keymint-Key-Id': keyId,
    'X-Keymint-Timestamp': timestamp,
    'X-Keymint-Nonce': n,
    Authorization: `KM-HMAC-SHA256 ${signature}`,
  };
}

/**
 * Exchanges an API key for a token at POST /api/v1/token (the one-header
 * form). credentials: {secret} or {keyId, secret, advanced: true}.
 * request: {audience?, scope?, expires_in?}. Resolves to the token
 * response; refusals throw ApiError with the OAuth error's description.
 */
export async function exchange(credentials, request = {}) {
  const body = JSON.stringify(Object.fromEntries(
    Object.entries(request).filter(([, v]) => v !== undefined && v !== null && v !== '')));
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (credentials.advanced) {
    Object.assign(headers, await signedHeaders(credentials.keyId, credentials.secret, 'POST', '/api/v1/token', body));
  } else {
    headers.Authorization = `ApiKey ${credentials.secret}`;
  }
  let response;
  try {
    response = await fetch('/api/v1/token', {
      method: 'POST', headers, body, credentials: 'omit', cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { detail: 'The server could not be reached.' });
  }
  const data = await parse(response);
  if (!response.ok) throw new ApiError(response.status, data, response.headers);
  return data;
}
