// The page's words in the reader's language: the merged catalog the server serves at /i18n/LANG.json
// (vmdeck.api.i18n reads the same files for the templates). This module loads it once, before any
// module that imports it runs (a top-level await), so t() is ready everywhere; `await loadMessages()`
// is kept for pages that want the catalog object. Values (names, numbers, sizes, dates, the server's
// own English messages) go in .val elements (val(), tNodes()): the catalog test reads everything else.
// Dates and sizes are formatted here, in the page's locale (Intl), for every page alike.

export const lang = document.documentElement.lang || 'en';
let messages = {};
const loading = fetch(`/i18n/${lang}.json`, { credentials: 'same-origin' })
  .then((response) => (response.ok ? response.json() : {}))
  .catch(() => ({}))
  .then((loaded) => { messages = loaded; return loaded; });

export function loadMessages() {
  return loading;
}
await loading;

// A missing key shows as itself, so a page never goes blank; the catalog test finds it instead.
export function t(key, values = {}) {
  let text = messages[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

// A value shown among words: its own element, so the catalog test knows it is not a word.
export function val(value, tag = 'span') {
  const node = document.createElement(tag);
  node.className = 'val';
  node.textContent = String(value ?? '');
  return node;
}

// A message with {placeholders} as a node list: words as text, the values in .val spans (a value may
// already be a node: a link, a <code>).
export function tNodes(key, values = {}) {
  const parts = (messages[key] ?? key).split(/(\{\w+\})/);
  return parts.filter((p) => p).map((p) => {
    const m = p.match(/^\{(\w+)\}$/);
    if (!m || !(m[1] in values)) return p;
    const value = values[m[1]];
    return value instanceof Node ? value : val(value);
  });
}

// --- the locale's dates, numbers and sizes ---------------------------------------------------------------
const locale = lang === 'ko' ? 'ko-KR' : 'en-US';
const formats = new Map();
function format(kind, options) {
  const key = `${kind}:${JSON.stringify(options)}`;
  if (!formats.has(key)) {
    formats.set(key, kind === 'date' ? new Intl.DateTimeFormat(locale, options) : new Intl.NumberFormat(locale, options));
  }
  return formats.get(key);
}

// A timestamp (ISO text, epoch milliseconds or a Date) in the page's language; `style` picks how much:
// 'datetime' (date and time), 'seconds' (with seconds), 'time', 'clock' (hours:minutes), 'day' (month, day).
const DATE_STYLES = {
  datetime: { dateStyle: 'medium', timeStyle: 'short' },
  seconds: { dateStyle: 'medium', timeStyle: 'medium' },
  time: { timeStyle: 'medium' },
  clock: { hour: '2-digit', minute: '2-digit' },
  day: { month: 'short', day: 'numeric' },
};
export function formatDate(when, style = 'datetime', { utc = false } = {}) {
  if (when === null || when === undefined || when === '') return '';
  const date = when instanceof Date ? when : new Date(when);
  if (Number.isNaN(date.getTime())) return String(when);
  return format('date', { ...DATE_STYLES[style], ...(utc ? { timeZone: 'UTC' } : {}) }).format(date);
}

// Numbers without digit grouping ("1024 MiB", as QEMU and the CLI print them), the locale's decimal mark.
export function formatNumber(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '–';
  return format('number', { maximumFractionDigits: digits, minimumFractionDigits: 0, useGrouping: false }).format(Number(n));
}

// Bytes in binary units (KiB, MiB, ...): the unit symbols are the same in every language.
export function formatBytes(n, digits = 1) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let value = Number(n);
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  const digitsShown = i ? digits : 0;
  return `${format('number', { maximumFractionDigits: digitsShown, minimumFractionDigits: digitsShown, useGrouping: false }).format(value)} ${units[i]}`;
}

// A count of MiB as the pages show memory ("2048 MiB").
export function formatMiB(n) {
  return n === null || n === undefined ? '–' : `${formatNumber(n)} MiB`;
}

// A duration in seconds with the language's unit words ("3 h 12 min" / "3시간 12분").
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Math.floor(seconds);
  if (s < 60) return t('unit.s', { n: s });
  if (s < 3600) return t('unit.min', { n: Math.floor(s / 60) });
  if (s < 86400) return t('unit.h_min', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  return t('unit.d_h', { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
}
