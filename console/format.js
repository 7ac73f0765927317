// How values read on the page.

/** "2026-11-30 14:05" in the reader's zone, with the exact time as title. */
export function when(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** "in 3 days", "5 min ago" */
export function relative(value) {
  if (!value) return '—';
  const seconds = Math.round((new Date(value).getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const units = [[86400 * 365, 'year'], [86400, 'day'], [3600, 'h'], [60, 'min'], [1, 's']];
  for (const [size, unit] of units) {
    if (abs >= size || unit === 's') {
      const n = Math.floor(abs / size);
      const text = unit === 'day' || unit === 'year' ? `${n} ${unit}${n === 1 ? '' : 's'}` : `${n} ${unit}`;
      return seconds >= 0 ? `in ${text}` : `${text} ago`;
    }
  }
  return '—';
}

/** A duration in seconds as words: 90 → "1 min 30 s", 86400 → "1 day". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const parts = [];
  let rest = Number(seconds);
  for (const [size, unit] of [[86400, 'day'], [3600, 'h'], [60, 'min'], [1, 's']]) {
    const n = Math.floor(rest / size);
    if (n) parts.push(unit === 'day' ? `${n} day${n === 1 ? '' : 's'}` : `${n} ${unit}`);
    rest -= n * size;
  }
  return parts.join(' ') || '0 s';
}

export function list(values) {
  return values && values.length ? values.join(', ') : '—';
}
