// Audit page: GET /api/audit in words ("powered off", "took a snapshot"), filtered by VM, user, action
// and time, a page at a time (before_id), console opens in a row one group.
import { api, el, toast } from './common.js';

const PAGE = 50;
const form = document.getElementById('audit-filters');
const pages = [];  // the before_id of each page shown so far (null: the newest)
let next = null;  // the before_id of the next older page, when there is one

// "POST /api/vms/x/poweroff" -> what the user did, in words.
const POWER_WORDS = { start: 'started it', shutdown: 'shut it down', poweroff: 'powered it off', reboot: 'rebooted it',
                      reset: 'reset it', pause: 'paused it', resume: 'resumed it' };
export function describe(entry) {
  const [method, path = ''] = (entry.target || '').includes(' ') ? entry.target.split(' ', 2) : ['', entry.target || ''];
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);  // ['api', 'vms', name, ...]
  const last = parts[parts.length - 1];
  const sub = parts.slice(3);
  switch (entry.action) {
    case 'vm.power': return POWER_WORDS[last] || `${last} (power)`;
    case 'vm.create': return 'created the VM';
    case 'vm.delete': return 'deleted the VM';
    case 'vm.resize': return last === 'apply-pending' ? 'applied pending changes now' : 'changed its settings';
    case 'vm.media': return method === 'DELETE' ? 'ejected the CD' : method === 'POST' ? 'inserted a CD' : 'changed the CD';
    case 'vm.devices':
      if (sub[0] === 'disks') return sub[2] === 'resize' ? `resized disk ${sub[1]}` : sub[1] ? `removed disk ${sub[1]}` : 'added a disk';
      if (sub[0] === 'nics') return sub[1] ? `removed network interface ${sub[1]}` : 'added a network interface';
      if (sub[0] === 'cdroms') return 'added a CD/DVD drive';
      return 'changed its devices';
    case 'vm.snapshot':
      if (sub[2] === 'revert') return `reverted to snapshot ${sub[1]}`;
      return sub[1] ? `deleted snapshot ${sub[1]}` : 'took a snapshot';
    case 'vm.clone': return 'cloned it';
    case 'vm.migrate': return 'migrated it';
    case 'vm.adopt': return 'moved it to another project';
    case 'vm.console': return 'opened the console';
    case 'vm.keys': return last === 'type' ? 'typed text on its keyboard' : 'pressed keys on its keyboard';
    case 'vm.exec': return 'ran a command in the guest';
    case 'iso.upload': return `uploaded ISO ${last}`;
    case 'iso.delete': return `deleted ISO ${last}`;
    case 'project.manage':
      if (parts[3] === 'members') return method === 'DELETE' ? `removed ${parts[4]} from project ${parts[2]}` : `gave ${parts[4]} a role in project ${parts[2]}`;
      if (parts.length === 2) return 'created a project';
      return method === 'DELETE' ? `deleted project ${parts[2]}` : `changed the quotas of project ${parts[2]}`;
    case 'user.manage': return 'created a user';
    case 'token.manage': return method === 'DELETE' ? 'revoked an API token' : 'created an API token';
    case 'auth.self': return last === 'password' ? 'changed their password' : last === 'logout' ? 'signed out' : 'signed in';
    case 'host.manage': return ['drain', 'undrain'].includes(last) ? `${last === 'drain' ? 'drained' : 'undrained'} host ${parts[2]}`
      : method === 'DELETE' ? `removed host ${parts[2]}` : 'registered a host';
    default: return entry.action;
  }
}

function outcome(entry) {
  if (entry.status < 400) return 'done';
  const detail = (entry.result || '').replace(/^[a-z_]+: /, '');
  if (entry.status === 403) return `refused: ${detail}`;
  if (entry.status === 404) return `not found: ${detail}`;
  return `failed: ${detail}`;
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' });
}

// A group's span: "Dec 6, 2026, 1:38:15 PM – 1:38:33 PM" (the date once when it is the same day).
function span(first, last) {
  const [a, b] = [new Date(first), new Date(last)];
  const end = a.toDateString() === b.toDateString() ? b.toLocaleTimeString([], { timeStyle: 'medium' }) : when(last);
  return `${when(first)} – ${end}`;
}

// Console opens of one user on one VM in a row become one line: "opened the console 7 times".
function grouped(entries) {
  const rows = [];
  for (const entry of entries) {
    const prev = rows[rows.length - 1];
    if (prev && entry.action === 'vm.console' && prev.action === 'vm.console' && prev.user === entry.user &&
        prev.vm === entry.vm && (entry.status < 400) === (prev.status < 400)) {
      prev.count += 1;
      prev.first = entry.at;
      continue;
    }
    rows.push({ ...entry, count: 1, first: entry.at });
  }
  return rows;
}

function filters() {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ['vm', 'user', 'action']) if (form[name].value.trim()) query.set(name, form[name].value.trim());
  for (const name of ['since', 'until']) if (form[name].value) query.set(name, new Date(form[name].value).toISOString());
  return query;
}

async function load(before = null) {
  const query = filters();
  if (before !== null) query.set('before_id', String(before));
  const entries = await api('GET', `/api/audit?${query}`);
  next = entries.length === PAGE ? entries[entries.length - 1].id : null;
  const rows = grouped(entries);
  document.getElementById('audit-rows').replaceChildren(...(rows.length ? rows.map((e) => el('tr', { dataset: { id: e.id, action: e.action } },
    el('td', { title: `${e.first === e.at ? '' : `${e.first} – `}${e.at} UTC` }, e.count > 1 ? span(e.first, e.at) : when(e.at)),
    el('td', {}, e.user, e.via === 'token' ? el('span', { class: 'dim' }, ' (API token)') : e.via === 'cli' ? el('span', { class: 'dim' }, ' (command line)') : ''),
    el('td', { class: 'what' }, describe(e) + (e.count > 1 ? ` ${e.count} times` : '')),
    el('td', {}, e.vm ?? ''), el('td', {}, e.project ?? '—'),
    el('td', { class: `clip outcome${e.status >= 400 ? ' bad' : ''}`, title: e.result ?? '' }, outcome(e))))
    : [el('tr', {}, el('td', { colspan: 6, class: 'dim' }, 'Nothing recorded that you may read matches.'))]));
  document.getElementById('a-older').disabled = next === null;
  document.getElementById('a-newer').disabled = pages.length <= 1;
  document.getElementById('a-page').textContent = `page ${pages.length}`;
}

function fresh() {
  pages.length = 0;
  pages.push(null);
  return load(null);
}

form.addEventListener('submit', (event) => { event.preventDefault(); fresh().catch((error) => toast(error.message, true)); });
document.getElementById('a-reset').addEventListener('click', () => { form.reset(); fresh().catch((error) => toast(error.message, true)); });
document.getElementById('a-older').addEventListener('click', () => {
  if (next === null) return;
  pages.push(next);
  load(next).catch((error) => toast(error.message, true));
});
document.getElementById('a-newer').addEventListener('click', () => {
  if (pages.length <= 1) return;
  pages.pop();
  load(pages[pages.length - 1]).catch((error) => toast(error.message, true));
});

async function suggestions() {
  const [vms, users] = await Promise.all([api('GET', '/api/vms').catch(() => []), api('GET', '/api/users').catch(() => [])]);
  document.getElementById('a-vms').replaceChildren(...vms.map((vm) => el('option', { value: vm.name })));
  document.getElementById('a-users').replaceChildren(...users.map((u) => el('option', { value: u.username })));
}

fresh().catch((error) => toast(error.message, true));
suggestions();
