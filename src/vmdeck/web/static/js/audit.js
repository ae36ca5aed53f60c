// Audit page: GET /api/audit in words ("powered off", "took a snapshot"), filtered by VM, user, action
// and time, a page at a time (before_id), console opens in a row one group.
import { api, el, toast } from './common.js';
import { formatDate, t, tNodes, val } from './i18n.js';

const PAGE = 50;
const form = document.getElementById('audit-filters');
const pages = [];  // the before_id of each page shown so far (null: the newest)
let next = null;  // the before_id of the next older page, when there is one

// "POST /api/vms/x/poweroff" -> what the user did, in words: [catalog key, {values}] (the values, a
// snapshot's or a project's name, are shown as values).
const POWER_WORDS = ['start', 'shutdown', 'poweroff', 'reboot', 'reset', 'pause', 'resume'];
export function describe(entry) {
  const [method, path = ''] = (entry.target || '').includes(' ') ? entry.target.split(' ', 2) : ['', entry.target || ''];
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);  // ['api', 'vms', name, ...]
  const last = parts[parts.length - 1];
  const sub = parts.slice(3);
  switch (entry.action) {
    case 'vm.power': return POWER_WORDS.includes(last) ? [`audit.did.power.${last}`] : ['audit.did.power.other', { action: last }];
    case 'vm.create': return ['audit.did.create'];
    case 'vm.delete': return ['audit.did.delete'];
    case 'vm.resize': return [last === 'apply-pending' ? 'audit.did.apply_pending' : 'audit.did.resize'];
    case 'vm.media': return [method === 'DELETE' ? 'audit.did.eject' : method === 'POST' ? 'audit.did.insert' : 'audit.did.media'];
    case 'vm.devices':
      if (sub[0] === 'disks') {
        if (sub[2] === 'resize') return ['audit.did.disk_resize', { disk: sub[1] }];
        return sub[1] ? ['audit.did.disk_remove', { disk: sub[1] }] : ['audit.did.disk_add'];
      }
      if (sub[0] === 'nics') return sub[1] ? ['audit.did.nic_remove', { nic: sub[1] }] : ['audit.did.nic_add'];
      if (sub[0] === 'cdroms') return ['audit.did.cdrom_add'];
      return ['audit.did.devices'];
    case 'vm.snapshot':
      if (sub[2] === 'revert') return ['audit.did.snap_revert', { snap: sub[1] }];
      return sub[1] ? ['audit.did.snap_delete', { snap: sub[1] }] : ['audit.did.snap_take'];
    case 'vm.clone': return ['audit.did.clone'];
    case 'vm.migrate': return ['audit.did.migrate'];
    case 'vm.adopt': return ['audit.did.adopt'];
    case 'vm.console': return ['audit.did.console'];
    case 'vm.keys': return [last === 'type' ? 'audit.did.type' : 'audit.did.keys'];
    case 'vm.exec': return ['audit.did.exec'];
    case 'iso.upload': return ['audit.did.iso_upload', { iso: last }];
    case 'iso.delete': return ['audit.did.iso_delete', { iso: last }];
    case 'project.manage':
      if (parts[3] === 'members') {
        return [method === 'DELETE' ? 'audit.did.member_remove' : 'audit.did.member_set', { user: parts[4], project: parts[2] }];
      }
      if (parts.length === 2) return ['audit.did.project_create'];
      return [method === 'DELETE' ? 'audit.did.project_delete' : 'audit.did.project_quota', { project: parts[2] }];
    case 'user.manage': return ['audit.did.user_create'];
    case 'token.manage': return [method === 'DELETE' ? 'audit.did.token_revoke' : 'audit.did.token_create'];
    case 'auth.self': return [last === 'password' ? 'audit.did.password' : last === 'logout' ? 'audit.did.logout' : 'audit.did.login'];
    case 'host.manage':
      if (['drain', 'undrain'].includes(last)) return [`audit.did.host_${last}`, { host: parts[2] }];
      return method === 'DELETE' ? ['audit.did.host_remove', { host: parts[2] }] : ['audit.did.host_add'];
    default: return ['audit.did.other', { action: entry.action }];
  }
}

// The outcome in words; the refusal's or the failure's reason is the server's own sentence (a value).
function outcome(entry) {
  if (entry.status < 400) return [t('activity.done')];
  const detail = (entry.result || '').replace(/^[a-z_]+: /, '');
  if (entry.status === 403) return tNodes('audit.refused', { detail });
  if (entry.status === 404) return tNodes('audit.not_found', { detail });
  return tNodes('audit.failed', { detail });
}

function when(iso) {
  return formatDate(iso, 'seconds');
}

// A group's span: "Dec 6, 2026, 1:38:15 PM – 1:38:33 PM" (the date once when it is the same day).
function span(first, last) {
  const [a, b] = [new Date(first), new Date(last)];
  const end = a.toDateString() === b.toDateString() ? formatDate(b, 'time') : when(last);
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
    el('td', { class: 'val', title: `${e.first === e.at ? '' : `${e.first} – `}${e.at} UTC` }, e.count > 1 ? span(e.first, e.at) : when(e.at)),
    el('td', {}, val(e.user), e.via === 'token' ? el('span', { class: 'dim' }, ` ${t('audit.via.token')}`)
      : e.via === 'cli' ? el('span', { class: 'dim' }, ` ${t('audit.via.cli')}`) : ''),
    el('td', { class: 'what' }, tNodes(...describe(e)), e.count > 1 ? [' ', ...tNodes('audit.times', { n: e.count })] : ''),
    el('td', { class: 'val' }, e.vm ?? ''), el('td', { class: 'val' }, e.project ?? '—'),
    el('td', { class: `clip outcome${e.status >= 400 ? ' bad' : ''}`, title: e.result ?? '' }, outcome(e))))
    : [el('tr', {}, el('td', { colspan: 6, class: 'dim' }, t('audit.empty')))]));
  document.getElementById('a-older').disabled = next === null;
  document.getElementById('a-newer').disabled = pages.length <= 1;
  document.getElementById('a-page').replaceChildren(...tNodes('audit.page', { n: pages.length }));
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
