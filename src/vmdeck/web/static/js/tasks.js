// The task list at the bottom of every page (Proxmox's task panel): the server's tasks, the long operations
// (create, clone, snapshot, upload, import, migrate, backup ...) read from GET /api/tasks and kept current by
// the event stream's "task" messages, with this browser's short actions (common.js track()) in the same list.
// Collapsible (the choice is kept in localStorage); a click on a server task shows its log.
import { api, connectEvents, el, localActivity } from './common.js';
import { loadMessages, t } from './i18n.js';

const panel = document.getElementById('tasks-panel');
const toggle = document.getElementById('tasks-toggle');
const body = document.getElementById('tasks-body');
const list = document.getElementById('activity-list');
const detail = document.getElementById('task-detail');
const topButton = document.getElementById('activity-toggle');
const OPEN_KEY = 'vmdeck.tasks.open';
const SHOWN = 30;

const tasks = new Map();  // id -> task (as the API shows it), with `seen`: when this page received it
let openId = null;  // the task whose log is shown
let loadError = null;

function kindName(kind) {
  const key = `tasks.kind.${kind}`;
  const text = t(key);
  return text === key ? t('tasks.kind.other') : text;
}

function formatTook(seconds) {
  const s = Math.floor(seconds);
  if (seconds < 1) return t('tasks.under_second');
  if (s < 60) return t('tasks.seconds', { s });
  if (s < 3600) return t('tasks.minutes', { m: Math.floor(s / 60), s: s % 60 });
  return t('tasks.hours', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}

// While a task runs its duration grows here, from the server's figure when it was received.
function duration(task) {
  return task.state === 'running' || task.state === 'queued'
    ? task.duration_s + (Date.now() - task.seen) / 1000 : task.duration_s;
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString(document.documentElement.lang || undefined);
}

function progressBar(task) {
  const running = task.state === 'running' || task.state === 'queued';
  if (task.total) {
    const pct = Math.min(100, Math.round((100 * (task.done || 0)) / task.total));
    return el('span', { class: 'task-bar' },
      el('progress', { max: 100, value: pct, 'aria-label': t('tasks.progress') }),
      el('span', { class: 'dim' }, t('tasks.percent', { pct })));
  }
  // Unknown progress: a bar that moves while it runs (no value: the browser animates it), none afterwards.
  return running ? el('span', { class: 'task-bar' }, el('progress', { 'aria-label': t('tasks.progress') })) : '';
}

function serverRow(task) {
  const li = el('li', { class: 'task', tabindex: 0, role: 'button', 'aria-controls': 'task-detail',
                        dataset: { state: task.state, id: String(task.id), kind: task.kind } },
    el('span', { class: 'state task-state', dataset: { state: task.state } }, t(`tasks.state.${task.state}`)),
    el('span', { class: 'task-what' }, el('strong', {}, kindName(task.kind)), ' ', el('span', { class: 'task-target val' }, task.target)),
    el('span', { class: 'task-who dim' }, t('tasks.by', { user: task.user }), ' · ', t(`tasks.origin.${task.origin}`)),
    progressBar(task),
    el('span', { class: 'task-took dim', dataset: { id: String(task.id) } }, formatTook(duration(task))),
    el('time', { class: 'dim val', datetime: task.started_at }, clock(task.started_at)),
    task.result && task.state !== 'running'
      ? el('span', { class: `task-result val${task.state === 'failed' ? ' bad' : ''}` }, task.result) : '');
  const open = () => showDetail(task.id);
  li.addEventListener('click', open);
  li.addEventListener('keydown', (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); open(); } });
  return li;
}

// One of this browser's own short actions (their words are the page's that ran them).
function localRow(entry) {
  const state = entry.status === 'running' ? 'running' : entry.status === 'failed' ? 'failed' : 'done';
  return el('li', { class: 'task local', dataset: { state, status: entry.status } },
    el('span', { class: 'state task-state', dataset: { state } }, t(`tasks.state.${state}`)),
    el('span', { class: 'task-what' }, entry.label),
    el('span', { class: 'task-who dim' }, t('tasks.here')),
    entry.took != null ? el('span', { class: 'task-took dim' }, formatTook(entry.took / 1000)) : '',
    el('time', { class: 'dim val', datetime: new Date(entry.at).toISOString() }, clock(entry.at)),
    entry.detail && state !== 'running' ? el('span', { class: `task-result val${state === 'failed' ? ' bad' : ''}` }, entry.detail) : '');
}

function render() {
  const server = [...tasks.values()].map((task) => ({ at: Date.parse(task.started_at), row: () => serverRow(task) }));
  const local = localActivity().map((entry) => ({ at: entry.at, row: () => localRow(entry) }));
  const merged = [...server, ...local].sort((a, b) => b.at - a.at).slice(0, SHOWN);
  list.replaceChildren(...(merged.length ? merged.map((item) => item.row())
    : [el('li', { class: 'dim' }, loadError ? t('tasks.load_failed', { error: loadError }) : t('tasks.none'))]));
  const running = [...tasks.values()].filter((task) => task.state === 'running' || task.state === 'queued').length
    + localActivity().filter((entry) => entry.status === 'running').length;
  for (const badge of [document.getElementById('tasks-running'), document.getElementById('activity-count')]) {
    if (!badge) continue;
    badge.textContent = running ? t('tasks.running', { n: running }) : '';
    badge.hidden = !running;
  }
  // The collapsed bar names the newest task, so a running create is seen without opening the panel.
  const newest = [...tasks.values()].sort((a, b) => b.id - a.id)[0];
  document.getElementById('tasks-latest').textContent = newest
    ? `${kindName(newest.kind)} ${newest.target}: ${t(`tasks.state.${newest.state}`)}` : '';
}

function setOpen(open) {
  body.hidden = !open;
  toggle.setAttribute('aria-expanded', String(open));
  topButton?.setAttribute('aria-expanded', String(open));
  toggle.title = open ? t('tasks.hide') : t('tasks.show');
  document.body.classList.toggle('tasks-open', open);
  try { localStorage.setItem(OPEN_KEY, open ? '1' : '0'); } catch { /* private mode */ }
}

async function showDetail(id) {
  openId = id;
  let task;
  try {
    task = await api('GET', `/api/tasks/${id}`);
  } catch (error) {
    detail.replaceChildren(el('p', { class: 'error' }, error.message));
    detail.hidden = false;
    return;
  }
  if (openId !== id) return;
  const close = el('button', { type: 'button', id: 'task-detail-close' }, t('tasks.log.close'));
  close.addEventListener('click', () => { openId = null; detail.hidden = true; });
  const outcome = task.result && task.state !== 'running'
    ? el('p', { class: task.state === 'failed' ? 'error' : '', id: 'task-detail-result' },
      t(task.state === 'failed' ? 'tasks.log.error' : 'tasks.log.result', { text: task.result })) : '';
  detail.replaceChildren(
    el('div', { class: 'row' },
      el('h2', { id: 'task-detail-title' }, t('tasks.log.title', { id: task.id, kind: kindName(task.kind), target: task.target })),
      close),
    el('p', { class: 'dim' }, t(`tasks.state.${task.state}`), ' · ', t('tasks.by', { user: task.user }),
      task.project ? ` · ${t('tasks.log.project', { project: task.project })}` : '', ' · ',
      t('tasks.log.started', { time: clock(task.started_at), duration: formatTook(task.duration_s) })),
    outcome,
    el('h3', {}, t('tasks.log.lines')),
    task.log.length ? el('pre', { id: 'task-log', class: 'task-log' }, task.log.join('\n'))
      : el('p', { class: 'dim', id: 'task-log' }, t('tasks.log.empty')));
  detail.hidden = false;
}

function remember(task) {
  tasks.set(task.id, { ...task, seen: Date.now() });
}

async function load() {
  try {
    const recent = await api('GET', `/api/tasks?limit=${SHOWN}`);
    tasks.clear();
    recent.forEach(remember);
    loadError = null;
  } catch (error) {
    loadError = error.message;
  }
  render();
}

let detailTimer = null;
let hellos = 0;
connectEvents((message) => {
  if (message.type === 'hello') {  // reconnected: what changed meanwhile is read again
    if (++hellos > 1) load();
    return;
  }
  if (message.type !== 'task') return;
  remember(message.task);
  render();
  if (openId === message.task.id && !detailTimer) {  // the open log follows its task, at most once a second
    detailTimer = setTimeout(() => { detailTimer = null; if (openId !== null) showDetail(openId); }, 1000);
  }
});

window.addEventListener('vmdeck:activity', render);
// Running durations tick.
setInterval(() => {
  for (const span of list.querySelectorAll('.task[data-state="running"] .task-took[data-id]')) {
    const task = tasks.get(Number(span.dataset.id));
    if (task) span.textContent = formatTook(duration(task));
  }
}, 1000);

await loadMessages();
toggle.addEventListener('click', () => setOpen(body.hidden));
topButton?.addEventListener('click', () => setOpen(body.hidden));
let startOpen = false;
try { startOpen = localStorage.getItem(OPEN_KEY) === '1'; } catch { /* private mode */ }
setOpen(startOpen);
panel.hidden = false;
await load();
