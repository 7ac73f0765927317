// "Load more" over a cursor-paged admin list ({items, next_cursor}): the
// one shape every list page (keys, audit events, tenants) shares.

import { h } from './dom.js';

/**
 * fetchPage(cursor) → {items, next_cursor}; render(item) → a row appended
 * to `into`. onError(error) shows a refusal (a 401 is not shown: the
 * session listener returns to sign-in). noun: [singular, plural] for the
 * count line. Returns the "Load more" button, the empty-list note and the
 * count line to place, load() for the first page, and reset().
 */
export function pager({ into, fetchPage, render, onError, noun = ['item', 'items'], emptyText, afterLoad }) {
  const button = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  const empty = h('p', { class: 'empty', hidden: true }, emptyText || `No ${noun[1]}.`);
  const status = h('p', { class: 'hint', 'aria-live': 'polite' });
  let cursor = null;
  let shown = 0;

  /** Loads the next page; resolves to the first new row, or null. */
  async function load() {
    button.disabled = true;
    try {
      const page = await fetchPage(cursor);
      const first = into.children.length;
      for (const item of page.items) into.append(render(item));
      shown += page.items.length;
      cursor = page.next_cursor;
      button.hidden = !cursor;
      empty.hidden = shown > 0;
      status.textContent = `${shown} ${shown === 1 ? noun[0] : noun[1]} shown${cursor ? ', more available' : ''}.`;
      afterLoad?.();
      return into.children[first] || null;
    } catch (error) {
      if (error.status !== 401) onError(error);
      return null;
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener('click', async () => {
    // Keyboard users continue from the first new row.
    const first = await load();
    const target = first?.querySelector('a, summary, button');
    if (target) {
      target.focus();
    } else if (first) {
      first.setAttribute('tabindex', '-1');
      first.focus();
    }
  });

  function reset() {
    into.replaceChildren();
    cursor = null;
    shown = 0;
  }

  return { button, empty, status, load, reset, count: () => shown };
}
