// The Disks tab's disks (storage_panel.html): each disk's size, what it takes on the host, its bus and
// whether it is an overlay; add, grow and remove; and the volumes kept when a disk was removed, with
// reattach and delete. Everything through the REST API (GET /api/vms/NAME/storage and the disk routes);
// vm.js tells this module when the VM's devices changed (the `vm:devices` event on the document).
import { api, confirmDialog, el, formatBytes, toast, track } from './common.js';
import { loadMessages, t, val } from './i18n.js';

const name = document.getElementById('vm').dataset.vm;
const enc = encodeURIComponent(name);
const GIB = 2 ** 30;
let disks = [];

function fileName(path) {
  return path ? path.split('/').pop() : '';
}

function gib(bytes) {
  return bytes == null ? t('storage.unknown') : `${+(bytes / GIB).toFixed(2)} ${t('storage.gib')}`;
}

function status(disk) {
  if (disk.live && disk.persistent) return t('storage.status.live');
  return disk.live ? t('storage.status.until_off') : t('storage.status.next_boot');
}

function image(disk) {
  const parts = [disk.backing ? t('storage.overlay', { base: fileName(disk.backing) }) : t('storage.whole')];
  if (disk.owned) parts.push(t('storage.vmdeck_volume'));
  if (disk.readonly) parts.push(t('storage.readonly'));
  return parts.flatMap((part, i) => (i ? [', ', part] : [part]));
}

function renderDisks() {
  const body = document.querySelector('#device-table tbody');
  body.replaceChildren(...(disks.length ? disks.map((disk) => el('tr', {
    dataset: { kind: 'disk', key: disk.target, size: disk.virtual_bytes ?? '', overlay: String(!!disk.backing) } },
  el('td', { class: 'val' }, disk.target), el('td', { class: 'val' }, disk.bus),
  el('td', { class: 'size val' }, gib(disk.virtual_bytes)), el('td', { class: 'allocated val' }, formatBytes(disk.allocated_bytes)),
  el('td', { class: 'image', title: fileName(disk.source) }, image(disk)), el('td', {}, status(disk)),
  el('td', {}, el('button', { type: 'button', class: 'danger remove', dataset: { need: 'manager' },
    onclick: () => removeDisk(disk) }, t('storage.remove')))))
    : [el('tr', {}, el('td', { colspan: 7, class: 'dim' }, t('storage.no_disks')))]));
  const select = document.getElementById('resize-target');
  const chosen = select.value;
  const growable = disks.filter((disk) => !disk.readonly && disk.source);
  select.replaceChildren(...growable.map((disk) => el('option', { value: disk.target, class: 'val' }, `${disk.target} (${gib(disk.virtual_bytes)})`)));
  if (growable.some((disk) => disk.target === chosen)) select.value = chosen;
}

function renderKept(kept) {
  document.querySelector('#kept-table tbody').replaceChildren(...(kept.length ? kept.map((volume) => el('tr', {
    dataset: { volume: volume.name } },
  el('td', { class: 'volume val' }, volume.name), el('td', { class: 'val' }, gib(volume.virtual_bytes)),
  el('td', { class: 'val' }, formatBytes(volume.allocated_bytes)),
  el('td', { class: 'actions' },
    el('button', { type: 'button', class: 'reattach', dataset: { need: 'manager' }, onclick: () => reattach(volume) }, t('storage.reattach')),
    ' ',
    el('button', { type: 'button', class: 'danger purge', dataset: { need: 'manager' }, onclick: () => purge(volume) }, t('storage.delete')))))
    : [el('tr', {}, el('td', { colspan: 4, class: 'dim' }, t('storage.no_kept')))]));
}

let loading = null;
async function load() {
  // One read at a time; a change meanwhile reads again once it is done.
  if (loading) { loading.again = true; return; }
  loading = { again: false };
  try {
    const storage = await api('GET', `/api/vms/${enc}/storage`);
    disks = storage.disks;
    renderDisks();
    renderKept(storage.kept);
    document.getElementById('storage-panel').dataset.loaded = 'true';
  } catch (error) {
    if (error.status !== 404) toast(t('storage.load_failed', { error: error.message }), true);
  } finally {
    const again = loading.again;
    loading = null;
    if (again) load();
  }
}

function changed() {
  load();
  // vm.js re-reads the VM (its overview lists the disks) on the device event the change causes.
}

async function removeDisk(disk) {
  const live = disk.live ? t('storage.remove_live', { vm: name }) : '';
  const values = { target: disk.target, file: fileName(disk.source), live, vm: name };
  const answer = await confirmDialog({
    title: t('storage.remove_title', values),
    message: disk.owned ? t('storage.remove_owned', values) : t('storage.remove_foreign', values),
    confirm: t('storage.remove'),
    option: disk.owned ? { label: t('storage.keep_option'), checked: true } : null,
  });
  if (!answer) return;
  const deleteVolume = disk.owned && answer.option === false;
  await track(t('storage.removing', values),
    () => api('DELETE', `/api/vms/${enc}/disks/${encodeURIComponent(disk.target)}?delete_volume=${deleteVolume}`),
    (change) => change.message).catch(() => {});
  changed();
}

async function reattach(volume) {
  await track(t('storage.reattaching', { volume: volume.name, vm: name }),
    () => api('POST', `/api/vms/${enc}/volumes/${encodeURIComponent(volume.name)}/reattach`, { bus: 'virtio' }),
    (change) => change.message).catch(() => {});
  changed();
}

async function purge(volume) {
  const values = { volume: volume.name, size: gib(volume.virtual_bytes), vm: name };
  const ok = await confirmDialog({
    title: t('storage.delete_title', values), message: t('storage.delete_message', values), confirm: t('storage.delete'),
  });
  if (!ok) return;
  await track(t('storage.deleting', values), () => api('DELETE', `/api/vms/${enc}/volumes/${encodeURIComponent(volume.name)}`),
    () => t('storage.deleted', values)).catch(() => {});
  changed();
}

document.getElementById('disk-add').addEventListener('click', async () => {
  const body = { size_gib: Number(document.getElementById('disk-size').value), bus: document.getElementById('disk-bus').value };
  await track(t('storage.adding', { size: body.size_gib, vm: name }), () => api('POST', `/api/vms/${enc}/disks`, body),
    (change) => change.message).catch(() => {});
  changed();
});

const resizeError = document.getElementById('resize-error');
document.getElementById('resize-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  resizeError.hidden = true;
  const target = document.getElementById('resize-target').value;
  const size = Number(document.getElementById('resize-size').value);
  const disk = disks.find((d) => d.target === target);
  const say = (message) => { resizeError.textContent = message; resizeError.hidden = false; };
  if (!disk) { say(t('storage.resize_none')); return; }
  if (disk.virtual_bytes != null && !(size * GIB > disk.virtual_bytes)) {
    say(t('storage.resize_smaller', { target, size: +(disk.virtual_bytes / GIB).toFixed(2) }));
    return;
  }
  try {
    await track(t('storage.resizing', { target, size, vm: name }),
      () => api('POST', `/api/vms/${enc}/disks/${encodeURIComponent(target)}/resize`, { size_gib: size }),
      (change) => change.message);
  } catch (error) {
    say(error.message);  // the quota or the pool refused: said under the form
  }
  changed();
});

document.addEventListener('vm:devices', () => load());
await loadMessages();
load();
