// VM page, backups panel: the VM's backups with verify and restore (restore in place is confirmed,
// naming what it replaces), "back up now" with its progress, and the schedule.
// Self-contained: it only needs the #backups block (templates/backups_panel.html) and common.js.
import { api, confirmDialog, el, toast } from './common.js';
import { formatBytes, formatDate, t, tNodes, val } from './i18n.js';

const panel = document.getElementById('backups');
const name = panel.dataset.vm;
const enc = encodeURIComponent(name);
const status = document.getElementById('backup-status');
// The last action's outcome stays on the panel (a notice leaves after a few seconds).
const outcome = document.getElementById('backup-result');
const bar = document.getElementById('backup-progress');
let polling = null;

function mib(bytes) { return formatBytes(bytes); }
// Backup times in the page's locale, in UTC (as the column says).
function created(backup) { return formatDate(backup.created, 'datetime', { utc: true }); }

async function run(message, call) {
  status.replaceChildren(...message);
  // The outcome is the server's sentence (its words, a .val); without one, the page's "done".
  const said = (text) => (text ? val(text) : t('activity.done'));
  try {
    const result = await call();
    toast(said(result?.message));
    outcome.replaceChildren(said(result?.message));
    outcome.className = 'ok';
  } catch (error) {
    toast(val(error.message), true);
    outcome.replaceChildren(val(error.message));
    outcome.className = 'bad';
  } finally {
    status.replaceChildren();
    await load();
  }
}

async function restore(backup) {
  const as = document.getElementById('backup-restore-as').value.trim();
  if (!as) {
    const ok = await confirmDialog({ title: t('backup.restore.title', { vm: name, backup: backup.id }), confirm: t('backup.replace'),
      message: tNodes('backup.restore.message', { vm: name, backup: backup.id, created: created(backup) }),
      option: null });
    if (!ok) return;
  }
  run(tNodes('backup.restoring', { backup: backup.id }), () => api('POST', `/api/backups/${encodeURIComponent(backup.id)}/restore`,
    as ? { as_name: as } : { force: true }));
}

function row(backup) {
  const id = encodeURIComponent(backup.id);
  return el('tr', { dataset: { backup: backup.id } },
    el('td', { class: 'val' }, backup.id), el('td', { class: 'val' }, created(backup)),
    el('td', { title: backup.reason }, t(`backup.kind.${backup.kind}`)), el('td', { class: 'val' }, mib(backup.bytes)),
    el('td', {},
      el('button', { 'data-backup-action': 'verify', onclick: () => run(tNodes('backup.verifying', { backup: backup.id }),
        () => api('POST', `/api/backups/${id}/verify`)) }, t('backup.verify')),
      el('button', { class: 'danger', 'data-backup-action': 'restore', onclick: () => restore(backup) }, t('backup.restore'))));
}

async function load() {
  const data = await api('GET', `/api/vms/${enc}/backups`);
  const body = document.querySelector('#backup-list tbody');
  body.replaceChildren(...data.backups.slice().reverse().map(row));
  if (!data.backups.length) body.append(el('tr', {}, el('td', { colspan: 5, class: 'dim' }, t('backup.none'))));
  const running = data.running[0];
  bar.hidden = !running;
  if (running && running.total) { bar.max = running.total; bar.value = running.done; }
  const s = data.schedule;
  document.getElementById('backup-schedule-now').replaceChildren(...(s
    ? [...tNodes('backup.schedule.now', { hours: Math.round(s.every_s / 3600 * 10) / 10, keep: s.keep_last }), ' ',
      ...(s.last_result ? tNodes('backup.schedule.last', { result: s.last_result }) : [t('backup.schedule.never')])]
    : [t('backup.schedule.none')]));
}

document.getElementById('backup-create').addEventListener('click', () => {
  const full = document.getElementById('backup-full').checked;
  polling = setInterval(() => load().catch(() => {}), 1000);  // progress: bytes done of total
  run([t('backup.running')], () => api('POST', `/api/vms/${enc}/backups`, { full }))
    .finally(() => { clearInterval(polling); bar.hidden = true; });
});

document.getElementById('backup-schedule').addEventListener('click', () => {
  const every = document.getElementById('backup-every').value.trim();
  const keep = Number(document.getElementById('backup-keep').value);
  run([t('backup.schedule.saving')], () => api('PUT', `/api/vms/${enc}/backups/schedule`, { every, keep_last: keep }));
});

document.getElementById('backup-unschedule').addEventListener('click', () => {
  run([t('backup.schedule.removing')], () => api('DELETE', `/api/vms/${enc}/backups/schedule`));
});

load().catch((error) => toast(error.message, true));
