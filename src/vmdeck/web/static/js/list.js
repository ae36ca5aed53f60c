// VM list: rows from GET /api/vms, states from the event stream (libvirt events), sparklines from stats.
import { api, connectEvents, drawLines, el, toast } from './common.js';

const rows = document.getElementById('vm-rows');
const history = new Map(); // name -> {cpu: [], rss: []}
const HISTORY = 30;
const ACTIONS = [['start', 'Start'], ['shutdown', 'Shut down'], ['poweroff', 'Power off'], ['pause', 'Pause'],
  ['resume', 'Resume']];

// `allowed` is the server's list of actions for this state (allowed_actions): the rules live in the core.
function setState(row, state, allowed) {
  const badge = row.querySelector('.state');
  badge.textContent = state;
  badge.dataset.state = state;
  row.dataset.state = state;
  for (const [action] of ACTIONS) {
    row.querySelector(`button[data-action="${action}"]`).disabled = !allowed.includes(action);
  }
}

async function power(name, action) {
  try {
    // The answer is not used to update the row: the state arrives through the event stream.
    await api('POST', `/api/vms/${encodeURIComponent(name)}/${action}`, action === 'shutdown' ? { timeout: 60, force: true } : undefined);
  } catch (error) {
    toast(`${name}: ${error.message}`, true);
  }
}

function row(vm) {
  const cpu = el('canvas', { class: 'spark cpu', width: 120, height: 24 });
  const rss = el('canvas', { class: 'spark rss', width: 120, height: 24 });
  const buttons = ACTIONS.map(([action, label]) =>
    el('button', { 'data-action': action, onclick: () => power(vm.name, action) }, label));
  const tr = el('tr', { dataset: { vm: vm.name } },
    el('td', {}, el('a', { href: `/vms/${encodeURIComponent(vm.name)}` }, vm.name)),
    el('td', {}, el('span', { class: 'state' })),
    el('td', {}, vm.vcpus), el('td', {}, `${vm.memory_mib} MiB`), el('td', { class: 'host' }, vm.host),
    el('td', {}, cpu, el('span', { class: 'cpu-now dim' })),
    el('td', {}, rss, el('span', { class: 'rss-now dim' })),
    el('td', { class: 'power' }, buttons));
  setState(tr, vm.state, vm.allowed_actions);
  return tr;
}

async function load() {
  const vms = await api('GET', '/api/vms');
  rows.replaceChildren(...(vms.length ? vms.map(row) : [el('tr', {}, el('td', { colspan: 8, class: 'dim' }, 'No VMs yet.'))]));
}

function onStats(sample) {
  for (const [name, values] of Object.entries(sample.vms)) {
    const tr = rows.querySelector(`tr[data-vm="${CSS.escape(name)}"]`);
    if (!tr) continue;
    const h = history.get(name) || { cpu: [], rss: [] };
    h.cpu.push(values.cpu_pct); h.rss.push(values.rss_mib);
    h.cpu = h.cpu.slice(-HISTORY); h.rss = h.rss.slice(-HISTORY);
    history.set(name, h);
    drawLines(tr.querySelector('canvas.cpu'), [{ values: h.cpu }], { max: 100 });
    drawLines(tr.querySelector('canvas.rss'), [{ values: h.rss }]);
    tr.querySelector('.cpu-now').textContent = values.cpu_pct == null ? '' : ` ${values.cpu_pct.toFixed(0)}%`;
    tr.querySelector('.rss-now').textContent = values.rss_mib == null ? '' : ` ${values.rss_mib.toFixed(0)} MiB`;
  }
}

connectEvents((message) => {
  if (message.type === 'state' && message.state) {
    const tr = rows.querySelector(`tr[data-vm="${CSS.escape(message.vm)}"]`);
    if (tr) setState(tr, message.state, message.allowed_actions); else load();
  } else if (message.type === 'inventory') {
    load();
  } else if (message.type === 'stats') {
    onStats(message);
  }
});
load().catch((error) => toast(error.message, true));
