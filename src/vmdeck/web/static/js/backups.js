// VM page, backups panel: the VM's backups with verify and restore (restore in place is confirmed,
// naming what it replaces), "back up now" with its progress, and the schedule.
// Self-contained: it only needs the #backups block (templates/backups_panel.html) and common.js.
import { api, confirmDialog, el, toast } from './common.js';

const panel = document.getElementById('backups');
const name = panel.dataset.vm;
const enc = encodeURIComponent(name);
const status = document.getElementById('backup-status');
// The last action's outcome stays on the panel (a notice leaves after a few seconds).
const outcome = document.getElementById('backup-result');
const bar = document.getElementById('backup-progress');
let polling = null;

function mib(bytes) { return `${(bytes / 2 ** 20).toFixed(1)} MiB`; }

async function run(message, call) {
  status.textContent = message;
  try {
    const result = await call();
    toast(result?.message || 'done');
    outcome.textContent = result?.message || 'done';
    outcome.className = 'ok';
  } catch (error) {
    toast(error.message, true);
    outcome.textContent = error.message;
    outcome.className = 'bad';
  } finally {
    status.textContent = '';
    await load();
  }
}

async function restore(backup) {
  const as = document.getElementById('backup-restore-as').value.trim();
  if (!as) {
    const ok = await confirmDialog({ title: `Restore ${name} from ${backup.id}?`, confirm: 'Replace',
      message: `Replace ${name} with backup ${backup.id} of ${backup.created.slice(0, 19).replace('T', ' ')}? `
        + `Its present disks, NVRAM and snapshots are deleted. A running ${name} is powered off first.`,
      option: null });
    if (!ok) return;
  }
  run(`restoring ${backup.id}…`, () => api('POST', `/api/backups/${encodeURIComponent(backup.id)}/restore`,
    as ? { as_name: as } : { force: true }));
}

function row(backup) {
  const id = encodeURIComponent(backup.id);
  return el('tr', { dataset: { backup: backup.id } },
    el('td', {}, backup.id), el('td', {}, backup.created.slice(0, 19).replace('T', ' ')),
    el('td', { title: backup.reason }, backup.kind), el('td', {}, mib(backup.bytes)),
    el('td', {},
      el('button', { 'data-backup-action': 'verify', onclick: () => run(`verifying ${backup.id}…`,
        () => api('POST', `/api/backups/${id}/verify`)) }, 'Verify'),
      el('button', { class: 'danger', 'data-backup-action': 'restore', onclick: () => restore(backup) }, 'Restore')));
}

async function load() {
  const data = await api('GET', `/api/vms/${enc}/backups`);
  const body = document.querySelector('#backup-list tbody');
  body.replaceChildren(...data.backups.slice().reverse().map(row));
  if (!data.backups.length) body.append(el('tr', {}, el('td', { colspan: 5, class: 'dim' }, 'no backups yet')));
  const running = data.running[0];
  bar.hidden = !running;
  if (running && running.total) { bar.max = running.total; bar.value = running.done; }
  const s = data.schedule;
  document.getElementById('backup-schedule-now').textContent = s
    ? `every ${Math.round(s.every_s / 3600 * 10) / 10} h, keeping ${s.keep_last}; last: ${s.last_result || 'not yet'}`
    : 'no schedule';
}

document.getElementById('backup-create').addEventListener('click', () => {
  const full = document.getElementById('backup-full').checked;
  polling = setInterval(() => load().catch(() => {}), 1000);  // progress: bytes done of total
  run('backing up…', () => api('POST', `/api/vms/${enc}/backups`, { full }))
    .finally(() => { clearInterval(polling); bar.hidden = true; });
});

document.getElementById('backup-schedule').addEventListener('click', () => {
  const every = document.getElementById('backup-every').value.trim();
  const keep = Number(document.getElementById('backup-keep').value);
  run('saving the schedule…', () => api('PUT', `/api/vms/${enc}/backups/schedule`, { every, keep_last: keep }));
});

document.getElementById('backup-unschedule').addEventListener('click', () => {
  run('removing the schedule…', () => api('DELETE', `/api/vms/${enc}/backups/schedule`));
});

load().catch((error) => toast(error.message, true));
