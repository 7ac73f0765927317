// Tenants (root administrators only): list, create, rename, and choose the
// tenant the console acts in (X-Tenant on every admin call).

import { api } from '../api.js';
import { pager } from '../pager.js';
import { h, field, page, notify, showError, clearErrors, formError } from '../dom.js';
import { when } from '../format.js';
import * as session from '../session.js';
import { go } from '../app.js';

/** Acts in `slug` (null: the home tenant) and opens a page showing its data. */
export function actIn(slug) {
  const current = session.current();
  if (!current) return;
  const target = slug && slug !== current.tenant ? slug : null;
  session.save({ ...current, actingTenant: target });
  notify(target ? `Now acting in tenant ${target}.` : `Back in your home tenant ${current.tenant}.`, 'info');
  go(session.keyAccess() !== 'none' ? '/keys' : '/tenants');
}

export async function render() {
  const current = session.current();
  const main = page('Tenants');
  if (!session.isRoot(current)) {
    main.append(h('p', {}, 'Only administrators of the system tenant "default" who hold admin:tenants manage tenants.'));
    return;
  }
  const acting = session.actingTenant(current);

  main.append(h('p', { class: 'acting-note' },
    acting === current.tenant
      ? `The console acts in your home tenant, ${current.tenant}. "Act in this tenant" makes every page (keys, settings, audit log) work in another one.`
      : `The console acts in tenant ${acting}; "Back to ${current.tenant}" (in the header, or on its row below) returns to your home tenant.`));

  // Create.
  const slug = h('input', { type: 'text', maxlength: 40, spellcheck: 'false', autocomplete: 'off', required: true });
  const name = h('input', { type: 'text', maxlength: 100, autocomplete: 'off', required: true });
  const createButton = h('button', { type: 'submit', class: 'primary' }, 'Create tenant');
  const createForm = h('form', { class: 'card create-tenant', novalidate: true, 'aria-labelledby': 'create-tenant-title' },
    h('h2', { id: 'create-tenant-title' }, 'New tenant'),
    h('div', { class: 'grid2' },
      field('Slug', 'slug', slug, 'Lower-case letters, digits and "-", 2 to 40 characters. It can never change or be reused.'),
      field('Name', 'name', name, '1 to 100 characters; can be changed later.')),
    formError(),
    h('div', { class: 'actions' }, createButton));
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(createForm);
    createButton.disabled = true;
    try {
      const tenant = await api('POST', '/tenants', { body: { slug: slug.value.trim(), name: name.value.trim() }, noTenant: true });
      notify(`Tenant ${tenant.slug} created.`, 'success');
      slug.value = '';
      name.value = '';
      tbody.prepend(row(tenant));
      empty.hidden = true;
      tbody.rows[0]?.querySelector('button')?.focus();
    } catch (error) {
      if (error.status === 401) return;
      if (error.status === 409 && !error.errors.length) {
        showError(createForm, { message: error.message, errors: [{ field: 'slug', message: `${error.message}: slugs are never reused, pick another.` }] });
      } else {
        showError(createForm, error);
      }
    } finally {
      createButton.disabled = false;
    }
  });

  // List.
  const tbody = h('tbody');
  const table = h('table', { class: 'stack' },
    h('caption', { class: 'visually-hidden' }, 'Tenants'),
    h('thead', {}, h('tr', {}, ...['Slug', 'Name', 'Created', 'Updated', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const listError = formError();
  const list = pager({
    into: tbody,
    fetchPage: (cursor) => api('GET', '/tenants', { query: { limit: 100, cursor }, noTenant: true }),
    render: (tenant) => row(tenant),
    onError: (error) => {
      listError.textContent = error.message;
      listError.hidden = false;
    },
    noun: ['tenant', 'tenants'],
  });
  const empty = list.empty;
  main.append(createForm, h('h2', {}, 'All tenants'), listError,
    h('div', { class: 'table-wrap' }, table, empty), h('div', { class: 'more' }, list.button));

  function row(tenant) {
    const nameCell = h('td', { 'data-label': 'Name' });
    const updatedCell = h('td', { 'data-label': 'Updated' });
    const isActing = tenant.slug === acting;
    const isHome = tenant.slug === current.tenant;
    const rename = h('button', { type: 'button', class: 'secondary' }, 'Rename');
    const act = isActing
      ? h('span', { class: 'badge badge-active' }, 'acting here')
      : h('button', { type: 'button', class: 'secondary', onclick: () => actIn(tenant.slug) },
        isHome ? `Back to ${tenant.slug}` : 'Act in this tenant');
    const tr = h('tr', { dataset: { slug: tenant.slug } },
      h('td', { 'data-label': 'Slug' }, h('code', {}, tenant.slug), isHome ? h('span', { class: 'hint' }, ' (home)') : null),
      nameCell,
      h('td', { 'data-label': 'Created' }, h('time', { datetime: tenant.created_at, title: tenant.created_at }, when(tenant.created_at))),
      updatedCell,
      h('td', { 'data-label': 'Actions' }, h('div', { class: 'row-actions' }, rename, act)));

    function show(t) {
      tenant = t;
      nameCell.replaceChildren(t.name);
      updatedCell.replaceChildren(h('time', { datetime: t.updated_at, title: t.updated_at }, when(t.updated_at)));
      rename.hidden = false;
    }

    rename.addEventListener('click', () => {
      rename.hidden = true;
      const input = h('input', { type: 'text', value: tenant.name, maxlength: 100, required: true });
      const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
      const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
      const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': `Rename ${tenant.slug}` },
        field(`New name for ${tenant.slug}`, 'name', input), formError(), h('div', { class: 'actions' }, save, cancel));
      cancel.addEventListener('click', () => {
        show(tenant);
        rename.focus();
      });
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearErrors(form);
        if (input.value.trim() === tenant.name) {
          show(tenant);
          rename.focus();
          return;
        }
        save.disabled = true;
        try {
          const renamed = await api('PATCH', `/tenants/${encodeURIComponent(tenant.slug)}`, {
            body: { name: input.value.trim() }, contentType: 'application/merge-patch+json', noTenant: true,
          });
          show(renamed);
          notify(`Tenant ${renamed.slug} renamed to "${renamed.name}".`, 'success');
          rename.focus();
        } catch (error) {
          if (error.status === 401) return;
          showError(form, error);
        } finally {
          save.disabled = false;
        }
      });
      nameCell.replaceChildren(form);
      input.focus();
      input.select();
    });

    show(tenant);
    return tr;
  }

  await list.load();
}
