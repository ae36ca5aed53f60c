// The page's words in the reader's language: the merged catalog the server serves at /i18n/LANG.json
// (vmdeck.api.i18n reads the same files for the templates). Pages call `await loadMessages()` once,
// then t('key', {name: value}) for text, or tNodes(...) to keep values in .val spans.
import { el } from './common.js';

export const lang = document.documentElement.lang || 'en';
let messages = {};

export async function loadMessages() {
  const response = await fetch(`/i18n/${lang}.json`, { credentials: 'same-origin' });
  messages = await response.json();
  return messages;
}

// A missing key shows as itself, so a page never goes blank; the catalog test finds it instead.
export function t(key, values = {}) {
  let text = messages[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

// A message with {placeholders} as a node list: words as text, the values in .val spans.
export function tNodes(key, values = {}) {
  const parts = (messages[key] ?? key).split(/(\{\w+\})/);
  return parts.filter((p) => p).map((p) => {
    const m = p.match(/^\{(\w+)\}$/);
    return m && m[1] in values ? el('span', { class: 'val' }, values[m[1]]) : p;
  });
}
