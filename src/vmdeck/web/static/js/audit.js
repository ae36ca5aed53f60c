// Audit page: the newest entries of GET /api/audit (what the caller may read).
import { api, el, toast } from './common.js';

async function load() {
  const entries = await api('GET', '/api/audit?limit=200');
  const rows = document.getElementById('audit-rows');
  rows.replaceChildren(...(entries.length ? entries.map((e) => el('tr', { dataset: { id: e.id } },
    el('td', { class: 'nowrap' }, e.at.replace('T', ' ').slice(0, 19)), el('td', {}, `${e.user} (${e.via})`),
    el('td', {}, e.project ?? '—'), el('td', {}, e.action), el('td', {}, e.vm ?? ''),
    el('td', {}, e.status), el('td', { class: 'clip', title: e.result ?? '' }, e.result)))
    : [el('tr', {}, el('td', { colspan: 7, class: 'dim' }, 'Nothing recorded that you may read.'))]));
}
load().catch((error) => toast(error.message, true));
