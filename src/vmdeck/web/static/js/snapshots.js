// VM page, snapshots panel: the snapshot tree with revert/delete (confirmed), take a snapshot, clone.
// Self-contained: it only needs the #snapshots block (templates/snapshots_panel.html) and common.js.
import { api, confirmDialog, el, toast } from './common.js';
import { formatDate, t, tNodes, val } from './i18n.js';

const panel = document.getElementById('snapshots');
const name = panel.dataset.vm;
const enc = encodeURIComponent(name);
const status = document.getElementById('snap-status');

function busy(message) { status.replaceChildren(...message); }

async function run(message, call) {
  busy(message);
  try {
    const result = await call();
    toast(result?.message ? val(result.message) : t('activity.done'));
  } catch (error) {
    toast(val(error.message), true);
  } finally {
    busy([]);
    await load();
  }
}

function item(tree, snap) {
  const current = snap.name === tree.current;
  const revert = el('button', { 'data-snap-action': 'revert', onclick: async () => {
    if (!(await confirmDialog({ title: t('snap.revert.title', { vm: name, snap: snap.name }), confirm: t('snap.revert'),
      message: tNodes('snap.revert.message', { vm: name, snap: snap.name }) }))) return;
    run(tNodes('snap.reverting', { snap: snap.name }), () => api('POST', `/api/vms/${enc}/snapshots/${encodeURIComponent(snap.name)}/revert`));
  } }, t('snap.revert'));
  const remove = el('button', { class: 'danger', 'data-snap-action': 'delete', onclick: async () => {
    if (!(await confirmDialog({ title: t('snap.delete.title', { snap: snap.name }), confirm: t('power.delete'),
      message: tNodes('snap.delete.message', { vm: name, snap: snap.name }) }))) return;
    run(tNodes('snap.deleting', { snap: snap.name }), () => api('DELETE', `/api/vms/${enc}/snapshots/${encodeURIComponent(snap.name)}`));
  } }, t('power.delete'));
  const kids = tree.snapshots.filter((s) => s.parent === snap.name);
  // When (the page's locale), the state it was taken in, with memory, the user's description (a value).
  const taken = String(snap.state).replace('shutoff', 'shut off').replace(/[^a-z]+/gi, '_');
  const details = [[val(formatDate(snap.created))], [t(`snap.taken.${taken}`)], snap.memory ? [t('snap.with_memory')] : null,
    snap.description ? [val(snap.description)] : null].filter(Boolean);
  return el('li', { dataset: { snapshot: snap.name }, class: current ? 'current' : '' },
    el('span', { class: 'snap-name val' }, snap.name), current ? el('span', { class: 'badge' }, t('snap.current')) : '',
    el('span', { class: 'dim' }, ' ', ...details.flatMap((d, i) => (i ? [' · ', ...d] : d)), ' '), revert, remove,
    kids.length ? el('ul', {}, kids.map((k) => item(tree, k))) : '');
}

async function load() {
  const tree = await api('GET', `/api/vms/${enc}/snapshots`);
  const list = document.getElementById('snap-tree');
  list.replaceChildren(...tree.snapshots.filter((s) => !s.parent).map((s) => item(tree, s)));
  if (!tree.snapshots.length) list.append(el('li', { class: 'dim' }, t('snap.none')));
}

document.getElementById('snap-create').addEventListener('click', () => {
  const body = {
    name: document.getElementById('snap-name').value.trim() || null,
    description: document.getElementById('snap-description').value,
    memory: document.getElementById('snap-memory').checked,
    quiesce: document.getElementById('snap-quiesce').checked,
  };
  run([t('snap.taking')], () => api('POST', `/api/vms/${enc}/snapshots`, body));
});

document.getElementById('clone-create').addEventListener('click', () => {
  const clone = document.getElementById('clone-name').value.trim();
  if (!clone) { toast(t('snap.clone.name_first'), true); return; }
  const linked = document.getElementById('clone-linked').checked;
  run(tNodes('snap.cloning', { clone }), () => api('POST', `/api/vms/${enc}/clone`, { name: clone, linked }));
});

load().catch((error) => toast(error.message, true));
