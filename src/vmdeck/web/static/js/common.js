// Shared by every page: REST calls with the CSRF token, the one live event stream, the confirmation
// dialog, notices and this browser's entries of the task panel (tasks.js), the power-action table and small DOM/chart helpers.
// Words come from the catalogs (i18n.js, loaded before this module runs); values are in .val elements.
import { formatBytes, formatDuration, t, val } from './i18n.js';

export { formatBytes, formatDuration };

export const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.kind = body?.error || 'error';
    this.field = body?.field || null;
  }
}

// fetch() with JSON in and out; every error body of vmdeck is {"error", "detail", "field"}.
export async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, credentials: 'same-origin',
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) {
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
    throw new ApiError(401, { detail: 'signed out' });
  }
  const data = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')));
  return node;
}

// A VM's state in words ("running" / "실행 중"); data-state keeps libvirt's own name for styles and tests.
export function stateWord(state) {
  return t(`state.${String(state || 'unknown').replace(/ /g, '_')}`);
}

// --- what a VM allows -------------------------------------------------------------------------------
// The core computes the actions each state allows (vmdeck.vm.state) and every VM, power reply and
// state event carries them as `allowed_actions`: the browser keeps no copy of the rules.
export function allowedActions(vm) {
  return new Set(vm?.allowed_actions || []);
}

// Power actions as the pages show them; `lose` names what a destructive one throws away.
export const POWER = [
  { action: 'start', label: t('power.start') },
  { action: 'shutdown', label: t('power.shutdown') },
  { action: 'reboot', label: t('power.reboot') },
  { action: 'pause', label: t('power.pause') },
  { action: 'resume', label: t('power.resume') },
  { action: 'reset', label: t('power.reset'), danger: true, lose: (vm) => t('power.reset.lose', { vm }) },
  { action: 'poweroff', label: t('power.poweroff'), danger: true, lose: (vm) => t('power.poweroff.lose', { vm }) },
  { action: 'delete', label: t('power.delete'), danger: true, lose: (vm) => t('power.delete.lose', { vm }) },
];
export const POWER_BY_ACTION = Object.fromEntries(POWER.map((p) => [p.action, p]));

// Runs a power action on one VM (asking first for a destructive one); resolves to the API's reply,
// or null when the user cancelled. Deleting a running VM (`running`: a QEMU process exists) asks the user
// to type its name: it is powered off at once, and one click too many must not cost a working machine.
export async function powerAction(vm, action, { running = false } = {}) {
  const info = POWER_BY_ACTION[action];
  if (info?.lose) {
    const runningDelete = action === 'delete' && running;
    const message = runningDelete
      ? t('power.delete.running', { vm })
      : info.lose(vm);
    const ok = await confirmDialog({ title: t('power.confirm.title', { action: info.label, vm }), message, confirm: info.label,
                                     typeName: runningDelete ? vm : null });
    if (!ok) return null;
  }
  const enc = encodeURIComponent(vm);
  return track(t('power.task', { action: info?.label || action, vm }), async () => {
    if (action === 'delete') return api('DELETE', `/api/vms/${enc}?force=true`);
    const body = action === 'shutdown' ? { timeout: 60, force: true } : undefined;
    return api('POST', `/api/vms/${enc}/${action}`, body);
  }, (result) => (action === 'delete' ? t('power.deleted', { vm }) : t('power.done', { vm, result: result?.result || info?.label || action })));
}

// A message whose {name} is shown in <strong> (the name to type in the confirmation dialog).
function tNodesStrong(key, name) {
  return t(key).split(/(\{name\})/).filter((p) => p).map((p) => (p === '{name}' ? el('strong', { class: 'val' }, name) : p));
}

// --- the confirmation dialog ------------------------------------------------------------------------
// A modal <dialog> that names what will be lost. Resolves to false on cancel (button, Esc, backdrop),
// or to true / {option: checked} on confirm when an option checkbox (e.g. "keep the volume") is shown.
// With `typeName`, the confirm button stays disabled until that name is typed.
export function confirmDialog({ title, message, confirm = t('dialog.ok'), option = null, typeName = null }) {
  return new Promise((resolve) => {
    const box = option ? el('input', { type: 'checkbox', id: 'confirm-option', checked: option.checked }) : null;
    const ok = el('button', { type: 'button', class: 'danger', id: 'confirm-ok', disabled: typeName !== null }, confirm);
    const typed = typeName === null ? null : el('input', { type: 'text', id: 'confirm-typed', autocomplete: 'off',
                                                           spellcheck: 'false', 'aria-describedby': 'confirm-type-hint' });
    typed?.addEventListener('input', () => { ok.disabled = typed.value !== typeName; });
    const cancel = el('button', { type: 'button', id: 'confirm-cancel' }, t('dialog.cancel'));
    const dialog = el('dialog', { class: 'confirm', id: 'confirm', 'aria-labelledby': 'confirm-title' },
      el('h2', { id: 'confirm-title' }, title),
      el('p', { id: 'confirm-message' }, message),
      option ? el('label', { class: 'check' }, box, option.label) : '',
      typed ? el('label', { for: 'confirm-typed', id: 'confirm-type-hint' }, tNodesStrong('dialog.type_name', typeName)) : '',
      typed || '',
      el('div', { class: 'row-inline end' }, cancel, ok));
    let answer = false;
    ok.addEventListener('click', () => { answer = option ? { option: box.checked } : true; dialog.close(); });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('click', (event) => { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();  // the safe choice has the focus: Enter does not destroy anything
  });
}

// --- notices and the task panel's local entries -------------------------------------------------------------------
export function toast(message, bad = false) {
  const box = document.getElementById('toast');
  if (!box) return;
  const item = el('div', { class: bad ? 'bad' : 'ok', title: t('toast.dismiss') }, message);
  item.addEventListener('click', () => item.remove());
  box.append(item);
  // Notices do not pile up over the page: the three newest stay (the task panel keeps them all).
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => item.remove(), bad ? 8000 : 4000);
}

// Survives page changes (a create lands on the VM page, a delete on the list) for a few minutes.
const ACTIVITY_KEY = 'vmdeck.activity';
const ACTIVITY_MAX = 40;
let activity = [];
try { activity = JSON.parse(sessionStorage.getItem(ACTIVITY_KEY) || '[]'); } catch { activity = []; }
// Entries still "running" when their page went away cannot be finished here.
activity = activity.filter((a) => a.status !== 'running' && a.status !== 'event' && Date.now() - a.at < 30 * 60 * 1000);

function saveActivity() {
  try { sessionStorage.setItem(ACTIVITY_KEY, JSON.stringify(activity.slice(0, ACTIVITY_MAX))); } catch { /* full */ }
  renderActivity();
}

function addActivity(entry) {
  const item = { id: `${Date.now()}-${Math.random()}`, at: Date.now(), ...entry };
  activity.unshift(item);
  activity = activity.filter((a) => a.status !== 'event').slice(0, ACTIVITY_MAX);
  saveActivity();
  return item;
}

// This browser's short actions (power verbs, settings ...), shown in the task panel (tasks.js) beside the
// server's tasks, which are the long operations: one list at the bottom of every page.
export function localActivity() {
  return activity;
}

function renderActivity() {
  window.dispatchEvent(new CustomEvent('vmdeck:activity'));
}

// Runs `work` as an entry of the task panel; a success notice (from `describe`) or an error notice.
export async function track(label, work, describe = () => t('activity.task_done', { task: label })) {
  const item = addActivity({ label, status: 'running' });
  try {
    const result = await work();
    item.took = Date.now() - item.at;  // how long it ran, shown in the panel
    item.status = 'done';
    item.detail = describe(result);
    saveActivity();
    toast(item.detail);
    return result;
  } catch (error) {
    item.took = Date.now() - item.at;
    item.status = 'failed';
    item.detail = error.message;
    saveActivity();
    toast([`${label}: `, val(error.message)], true);
    throw error;
  }
}

// Records a success that lands on another page (create -> VM page): the notice shows there.
export function noteForNextPage(message, { record = true } = {}) {
  if (record) addActivity({ label: message, status: 'done', detail: '' });
  try { sessionStorage.setItem('vmdeck.notice', message); } catch { /* private mode */ }
}

// --- the live event stream ------------------------------------------------------------------------------
// One WebSocket per page (libvirt's domain events and stats, pushed by the server), opened here for every
// page so the footer's status is true everywhere; pages subscribe with connectEvents(). Reconnects itself.
const listeners = new Set();
let streamOpen = false;

export function connectEvents(onMessage) {
  listeners.add(onMessage);
  if (!streamOpen) openStream();
}

function openStream() {
  streamOpen = true;
  const status = document.getElementById('stream-status');
  const show = (state) => { if (status) { status.dataset.state = state; status.textContent = t(`stream.${state}`); } };
  let delay = 500;
  const open = () => {
    const socket = new WebSocket(wsUrl('/api/events'));
    socket.onopen = () => { delay = 500; show('live'); };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      for (const listener of listeners) listener(message);
    };
    socket.onclose = () => {
      show('down');
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
}

// --- charts ------------------------------------------------------------------------------------------------
// A line chart with axes: the value axis in `unit` (0 .. max, or the largest value seen), the time axis
// from -(samples × interval) s to "now". Series: [{label, values}], one value per sample, newest last.
export function drawLines(canvas, seriesList, { max = null, unit = '', interval = 2, capacity = 60 } = {}) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const all = seriesList.flatMap((s) => s.values.filter((v) => v != null));
  const ceiling = max ?? niceCeiling(Math.max(1, ...all));
  ctx.font = '10px system-ui, sans-serif';
  const tick = (fraction) => `${formatTick(fraction * ceiling)}${unit ? ` ${unit}` : ''}`;
  // The value axis is as wide as its widest label: "24153 MiB" must not be cut to "153 MiB".
  const left = Math.ceil(Math.max(...[0, 0.5, 1].map((f) => ctx.measureText(tick(f)).width))) + 8;
  const bottom = 16; const top = 6; const right = 6;
  const plotW = width - left - right; const plotH = height - top - bottom;
  ctx.fillStyle = '#6b7483';
  ctx.strokeStyle = '#dde2ea';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + plotW, y + 0.5); ctx.stroke();
    ctx.fillText(tick(fraction), left - 4, y);
  }
  ctx.textBaseline = 'alphabetic';
  ctx.textAlign = 'left';
  ctx.fillText(`-${capacity * interval} s`, left, height - 3);
  ctx.textAlign = 'right';
  ctx.fillText(t('chart.now'), left + plotW, height - 3);
  const colors = ['#2f6fde', '#1f8f4e', '#b7791f', '#c53030', '#805ad5', '#319795'];
  seriesList.forEach((series, i) => {
    const values = series.values.slice(-capacity);
    ctx.strokeStyle = colors[i % colors.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    values.forEach((v, x) => {
      const px = left + plotW - ((values.length - 1 - x) / Math.max(1, capacity - 1)) * plotW;
      const py = top + plotH - (Math.min(v ?? 0, ceiling) / ceiling) * plotH;
      if (x === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  });
  canvas.dataset.samples = String(Math.max(0, ...seriesList.map((s) => s.values.length)));
}

// A sparkline for table rows: no axes, scaled to `max` or the largest value.
export function drawSpark(canvas, values, { max = null } = {}) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const ceiling = max ?? Math.max(1, ...values.filter((v) => v != null));
  ctx.strokeStyle = '#2f6fde';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, x) => {
    const px = values.length > 1 ? (x / (values.length - 1)) * (width - 2) + 1 : 1;
    const py = height - 2 - ((v ?? 0) / ceiling) * (height - 4);
    if (x === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
  });
  ctx.stroke();
}

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function formatTick(value) {
  return value >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
}

// --- the page frame ------------------------------------------------------------------------------------------
document.getElementById('logout')?.addEventListener('click', async () => {
  await api('POST', '/api/auth/logout').catch(() => {});
  location.href = '/login';
});

if (document.getElementById('stream-status')) connectEvents(() => {});

try {
  const notice = sessionStorage.getItem('vmdeck.notice');
  if (notice) { sessionStorage.removeItem('vmdeck.notice'); toast(notice); }
} catch { /* private mode */ }
