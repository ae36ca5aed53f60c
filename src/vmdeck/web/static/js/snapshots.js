// VM page, snapshots panel: the snapshot tree with revert/delete (confirmed), take a snapshot, clone.
// Self-contained: it only needs the #snapshots block (templates/snapshots_panel.html) and common.js.
import { api, confirmDialog, el, toast } from './common.js';

const panel = document.getElementById('snapshots');
const name = panel.dataset.vm;
const enc = encodeURIComponent(name);
const status = document.getElementById('snap-status');

function busy(message) { status.textContent = message; }

async function run(message, call) {
  busy(message);
  try {
    const result = await call();
    toast(result?.message || 'done');
  } catch (error) {
    toast(error.message, true);
  } finally {
    busy('');
    await load();
  }
}

function item(tree, snap) {
  const current = snap.name === tree.current;
  const revert = el('button', { 'data-snap-action': 'revert', onclick: async () => {
    if (!(await confirmDialog({ title: `Revert ${name} to snapshot ${snap.name}?`, confirm: 'Revert',
      message: `Revert ${name} to snapshot ${snap.name}? Its present state is discarded.` }))) return;
    run(`reverting to ${snap.name}…`, () => api('POST', `/api/vms/${enc}/snapshots/${encodeURIComponent(snap.name)}/revert`));
  } }, 'Revert');
  const remove = el('button', { class: 'danger', 'data-snap-action': 'delete', onclick: async () => {
    if (!(await confirmDialog({ title: `Delete snapshot ${snap.name}?`, confirm: 'Delete',
      message: `Delete snapshot ${snap.name}? You can no longer go back to it. ${name}'s present state and its other snapshots stay as they are: whatever they still need of ${snap.name} is kept, the rest is deleted.` }))) return;
    run(`deleting ${snap.name}…`, () => api('DELETE', `/api/vms/${enc}/snapshots/${encodeURIComponent(snap.name)}`));
  } }, 'Delete');
  const kids = tree.snapshots.filter((s) => s.parent === snap.name);
  const made = new Date(snap.created);
  const created = Number.isNaN(made.getTime()) ? snap.created : made.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  const details = [created, `taken while ${String(snap.state).replace('shutoff', 'shut off')}`, snap.memory ? 'with memory' : '', snap.description].filter(Boolean).join(' · ');
  return el('li', { dataset: { snapshot: snap.name }, class: current ? 'current' : '' },
    el('span', { class: 'snap-name' }, snap.name), current ? el('span', { class: 'badge' }, 'you are here') : '',
    el('span', { class: 'dim' }, ` ${details} `), revert, remove,
    kids.length ? el('ul', {}, kids.map((k) => item(tree, k))) : '');
}

async function load() {
  const tree = await api('GET', `/api/vms/${enc}/snapshots`);
  const list = document.getElementById('snap-tree');
  list.replaceChildren(...tree.snapshots.filter((s) => !s.parent).map((s) => item(tree, s)));
  if (!tree.snapshots.length) list.append(el('li', { class: 'dim' }, 'no snapshots yet'));
}

document.getElementById('snap-create').addEventListener('click', () => {
  const body = {
    name: document.getElementById('snap-name').value.trim() || null,
    description: document.getElementById('snap-description').value,
    memory: document.getElementById('snap-memory').checked,
    quiesce: document.getElementById('snap-quiesce').checked,
  };
  run('taking a snapshot…', () => api('POST', `/api/vms/${enc}/snapshots`, body));
});

document.getElementById('clone-create').addEventListener('click', () => {
  const clone = document.getElementById('clone-name').value.trim();
  if (!clone) { toast('name the clone first', true); return; }
  const linked = document.getElementById('clone-linked').checked;
  run(`cloning to ${clone}…`, () => api('POST', `/api/vms/${enc}/clone`, { name: clone, linked }));
});

load().catch((error) => toast(error.message, true));
