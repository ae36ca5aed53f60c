// VM list: rows from GET /api/vms, states from the event stream (libvirt events), sparklines from stats.
// Sortable columns, a filter, a per-row action menu and bulk power actions on the ticked rows.
import { POWER, POWER_BY_ACTION, allowedActions, api, confirmDialog, connectEvents, drawSpark, el, formatDuration, powerAction, stateWord, toast, track } from './common.js';
import { formatNumber, t, tNodes, val } from './i18n.js';

const rows = document.getElementById('vm-rows');
const filterInput = document.getElementById('vm-filter');
const stateFilter = document.getElementById('vm-state-filter');
const selectAll = document.getElementById('select-all');
const history = new Map(); // name -> {cpu: [], rss: []}
const runtime = new Map(); // name -> {uptime_s, addresses}, from the stats samples (blank until known)
const HISTORY = 30;
let vms = [];
const selected = new Set();
let sort = { key: 'name', dir: 1 };

function latest(name, key) {
  const values = history.get(name)?.[key];
  return values?.length ? values[values.length - 1] : null;
}

function sortValue(vm, key) {
  if (key === 'cpu') return latest(vm.name, 'cpu') ?? -1;
  if (key === 'rss') return latest(vm.name, 'rss') ?? -1;
  if (key === 'uptime') return runtime.get(vm.name)?.uptime_s ?? -1;
  if (key === 'ip') return runtime.get(vm.name)?.addresses?.[0] ?? '';
  return vm[key] ?? '';
}

function visible(vm) {
  const text = filterInput.value.trim().toLowerCase();
  if (stateFilter.value && vm.state !== stateFilter.value) return false;
  return !text || vm.name.toLowerCase().includes(text) || vm.state.includes(text) || stateWord(vm.state).includes(text);
}

function setState(tr, vm) {
  const badge = tr.querySelector('.state');
  badge.textContent = stateWord(vm.state);
  badge.dataset.state = vm.state;
  tr.dataset.state = vm.state;
  const allowed = allowedActions(vm);
  for (const button of tr.querySelectorAll('.menu-items button')) button.disabled = !allowed.has(button.dataset.action);
}

// The table scrolls inside its card on narrow screens, which would clip a menu positioned inside it:
// the open menu is placed on the viewport, under its button (right-aligned), and follows it on scroll.
function placeMenu(toggle, items) {
  if (items.hidden) return;
  const button = toggle.getBoundingClientRect();
  items.style.position = 'fixed';
  items.style.top = `${Math.round(button.bottom)}px`;
  items.style.right = `${Math.max(0, Math.round(window.innerWidth - button.right))}px`;
  const menu = items.getBoundingClientRect();
  if (menu.bottom > window.innerHeight) items.style.top = `${Math.max(0, Math.round(button.top - menu.height))}px`;
}
function placeOpenMenus() {
  for (const items of document.querySelectorAll('.menu-items:not([hidden])')) {
    placeMenu(items.parentElement.querySelector('.menu-toggle'), items);
  }
}
document.addEventListener('scroll', placeOpenMenus, { capture: true, passive: true });
window.addEventListener('resize', placeOpenMenus);

function closeMenus(except = null) {
  for (const items of document.querySelectorAll('.menu-items')) if (items !== except) items.hidden = true;
}
document.addEventListener('click', (event) => { if (!event.target.closest('.menu')) closeMenus(); });
document.addEventListener('keydown', (event) => { if (event.key === 'Escape') closeMenus(); });

async function act(vm, action) {
  closeMenus();
  try {
    const running = allowedActions(vms.find((v) => v.name === vm)).has('poweroff');
    const result = await powerAction(vm, action, { running });
    if (result && action === 'delete') load();
  } catch { /* the notice says why */ }
}

// Your role on each VM (its project's; administrators: all): a row menu offers only what it allows.
let me = null;
const RANK = { viewer: 1, operator: 2, manager: 3, admin: 4 };
function rank(vm) {
  if (!me) return RANK.admin;  // not known yet: the API refuses what the role lacks, and says so
  return me.is_admin && me.via !== 'token' ? RANK.admin : RANK[me.projects?.[vm.project]] || 0;
}

function row(vm) {
  const cpu = el('canvas', { class: 'spark cpu', width: 90, height: 24 });
  const rss = el('canvas', { class: 'spark rss', width: 90, height: 24 });
  const mine = POWER.filter(({ action }) => rank(vm) >= (action === 'delete' ? RANK.manager : RANK.operator));
  const items = el('div', { class: 'menu-items', hidden: true, role: 'menu' },
    mine.map(({ action, label, danger }) =>
      el('button', { type: 'button', role: 'menuitem', class: danger ? 'danger' : '', 'data-action': action,
                     onclick: () => act(vm.name, action) }, label)));
  const toggle = el('button', { type: 'button', class: 'menu-toggle', 'aria-haspopup': 'menu', 'aria-label': t('list.actions_for', { vm: vm.name }),
                                onclick: () => { closeMenus(items); items.hidden = !items.hidden; placeMenu(toggle, items); } }, '⋮');
  const check = el('input', { type: 'checkbox', class: 'select', 'aria-label': t('list.select', { vm: vm.name }), checked: selected.has(vm.name),
                              onchange: (event) => { if (event.target.checked) selected.add(vm.name); else selected.delete(vm.name); updateBulk(); } });
  const tr = el('tr', { dataset: { vm: vm.name } },
    el('td', {}, check),
    el('td', { class: 'wrap' }, el('a', { href: `/vms/${encodeURIComponent(vm.name)}`, title: vm.name, class: 'val' }, vm.name)),
    el('td', { class: 'hide-narrow hide-medium project val' }, vm.project ?? '—'),
    el('td', {}, el('span', { class: 'state' })),
    el('td', { class: 'hide-narrow val' }, vm.vcpus), el('td', { class: 'hide-narrow val' }, `${formatNumber(vm.memory_mib)} MiB`),
    el('td', { class: 'hide-narrow hide-medium host val' }, vm.host ?? ''),
    el('td', { class: 'hide-narrow' }, cpu, el('span', { class: 'cpu-now dim val' })),
    el('td', { class: 'hide-narrow' }, rss, el('span', { class: 'rss-now dim val' })),
    el('td', { class: 'hide-narrow ip val' }), el('td', { class: 'hide-narrow uptime val' }),
    el('td', { class: 'actions' }, mine.length ? el('div', { class: 'menu' }, toggle, items) : ''));
  setState(tr, vm);
  drawRow(tr, vm.name);
  return tr;
}

function render() {
  const shown = vms.filter(visible).sort((a, b) => {
    const x = sortValue(a, sort.key); const y = sortValue(b, sort.key);
    return (x < y ? -1 : x > y ? 1 : 0) * sort.dir || a.name.localeCompare(b.name);
  });
  for (const th of document.querySelectorAll('th.sortable')) {
    th.setAttribute('aria-sort', th.dataset.sort === sort.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  let empty = null;
  if (!vms.length) {
    empty = el('td', { colspan: 12, class: 'dim' }, tNodes('list.empty', {
      link: el('a', { href: '/create' }, t('list.empty.link')), command: el('code', {}, 'vmdeck create NAME') }));
  } else if (!shown.length) {
    empty = el('td', { colspan: 12, class: 'dim' }, t('list.no_match'));
  }
  rows.replaceChildren(...(empty ? [el('tr', {}, empty)] : shown.map(row)));
  updateBulk();
}

function updateBulk() {
  for (const name of [...selected]) if (!vms.some((vm) => vm.name === name)) selected.delete(name);
  document.getElementById('bulk').hidden = selected.size === 0;
  document.getElementById('bulk-count').replaceChildren(...tNodes('list.selected', { n: selected.size }));
  selectAll.checked = selected.size > 0 && selected.size === vms.filter(visible).length;
}

async function load() {
  if (!me) me = await api('GET', '/api/auth/me').catch(() => null);
  // Ticking rows is for bulk power actions: only where the role has any.
  document.getElementById('vm-table').dataset.canOperate = String(!me || me.is_admin
    || Object.values(me.projects || {}).some((role) => RANK[role] >= RANK.operator));
  vms = await api('GET', '/api/vms');
  render();
}

document.querySelector('#vm-table thead').addEventListener('click', (event) => {
  const th = event.target.closest('th.sortable');
  if (!th) return;
  sort = { key: th.dataset.sort, dir: sort.key === th.dataset.sort ? -sort.dir : 1 };
  render();
});
filterInput.addEventListener('input', render);
stateFilter.addEventListener('change', render);
selectAll.addEventListener('change', () => {
  for (const vm of vms.filter(visible)) { if (selectAll.checked) selected.add(vm.name); else selected.delete(vm.name); }
  render();
});

// Bulk: each ticked VM that allows the action gets it; a destructive one is confirmed once for all.
document.getElementById('bulk').addEventListener('click', async (event) => {
  const action = event.target.closest('button')?.dataset.bulk;
  if (!action) return;
  const info = POWER_BY_ACTION[action];
  const targets = vms.filter((vm) => selected.has(vm.name) && allowedActions(vm).has(action)).map((vm) => vm.name);
  if (!targets.length) { toast(t('list.bulk.none', { action: info.label }), true); return; }
  if (info.lose && !(await confirmDialog({ title: t('list.bulk.title', { action: info.label, n: targets.length }),
    message: [val(targets.join(', ')), ': ', info.lose(t('list.bulk.each'))],
    confirm: t('list.bulk.confirm', { action: info.label, n: targets.length }) }))) return;
  const enc = (vm) => encodeURIComponent(vm);
  await Promise.allSettled(targets.map((vm) => track(t('power.task', { action: info.label, vm }), () =>
    api('POST', `/api/vms/${enc(vm)}/${action}`, action === 'shutdown' ? { timeout: 60, force: true } : undefined),
  (result) => t('power.done', { vm, result: result?.result || info.label }))));
});

const USER_MODE_ADDRESS = /^(10\.0\.2\.\d+|fec0:)/i;

function drawRow(tr, name) {
  const info = runtime.get(name);
  // Uptime and addresses belong to a QEMU process: shown while one exists (power off allowed).
  const running = allowedActions(vms.find((v) => v.name === name)).has('poweroff');
  // QEMU's user-mode NIC gives every guest 10.0.2.15 (and fec0::…): an address nobody can reach, left out.
  const addresses = (info?.addresses || []).filter((a) => !USER_MODE_ADDRESS.test(a));
  tr.querySelector('.ip').textContent = running ? addresses.join(', ') : '';
  tr.querySelector('.uptime').textContent = running ? formatDuration(info?.uptime_s) : '';
  const h = history.get(name);
  if (!h) return;
  drawSpark(tr.querySelector('canvas.cpu'), h.cpu, { max: 100 });
  drawSpark(tr.querySelector('canvas.rss'), h.rss);
  const cpuNow = h.cpu[h.cpu.length - 1]; const rssNow = h.rss[h.rss.length - 1];
  // A stopped VM uses nothing: its last sample from before it stopped is not shown as current.
  tr.querySelector('.cpu-now').textContent = cpuNow == null || !running ? '' : ` ${formatNumber(cpuNow)}%`;
  tr.querySelector('.rss-now').textContent = rssNow == null || !running ? '' : ` ${formatNumber(rssNow)} MiB`;
}

function onStats(sample) {
  for (const [name, values] of Object.entries(sample.vms)) {
    const h = history.get(name) || { cpu: [], rss: [] };
    h.cpu.push(values.cpu_pct); h.rss.push(values.rss_mib);
    h.cpu = h.cpu.slice(-HISTORY); h.rss = h.rss.slice(-HISTORY);
    history.set(name, h);
    runtime.set(name, { uptime_s: values.uptime_s, addresses: values.addresses });
    const tr = rows.querySelector(`tr[data-vm="${CSS.escape(name)}"]`);
    if (tr) drawRow(tr, name);
  }
}

connectEvents((message) => {
  if (message.type === 'state' && message.state) {
    const vm = vms.find((v) => v.name === message.vm);
    const tr = rows.querySelector(`tr[data-vm="${CSS.escape(message.vm)}"]`);
    if (!vm) { load(); return; }
    vm.state = message.state;
    vm.allowed_actions = message.allowed_actions;  // computed by the core for the new state
    if (tr) { setState(tr, vm); drawRow(tr, vm.name); }
    if (stateFilter.value) render();
  } else if (message.type === 'inventory') {
    load();
  } else if (message.type === 'stats') {
    onStats(message);
  }
});
load().catch((error) => toast(error.message, true));

// Each project's use against its quota ("3 / 4"; no limit: "3 / —").
async function loadUsage() {
  const projects = await api('GET', '/api/projects');
  const body = document.getElementById('usage-rows');
  const shown = await Promise.all(projects.map((p) => api('GET', `/api/projects/${encodeURIComponent(p.name)}`)));
  body.replaceChildren(...shown.map((p, i) => el('tr', { dataset: { project: p.name } },
    el('td', { class: 'val' }, p.name), el('td', {}, projects[i].role ? t(`role.${projects[i].role}`) : ''),
    ...['instances', 'vcpus', 'memory_mib', 'disk_gib', 'iso_gib'].map((q) =>
      el('td', { class: `quota-${q} val` }, `${formatNumber(p.quota[q].used, 2)} / ${p.quota[q].limit == null ? '—' : formatNumber(p.quota[q].limit, 2)}`)))));
}
loadUsage().catch((error) => toast(error.message, true));
