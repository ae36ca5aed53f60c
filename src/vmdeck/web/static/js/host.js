// Host page: capacity, overcommit and KVM usability; the ISO library (upload with progress, delete).
import { api, confirmDialog, connectEvents, csrfToken, drawLines, el, formatBytes, toast, track } from './common.js';
import { t, tNodes, val } from './i18n.js';

// libvirt's domain types in the CLI's words: kvm is KVM (hardware), qemu is TCG (QEMU emulates the CPU).
const ACCEL = { kvm: 'KVM', qemu: 'TCG' };

async function loadFacts() {
  const h = await api('GET', '/api/host');
  const facts = [
    [t('common.host'), [val(`${h.hostname} (${h.uri})`)]],
    ['CPU', tNodes('host.cpu', { model: `${h.cpu_vendor} ${h.cpu_model}`, n: h.pcpus })],
    [t('common.memory'), [val(`${h.memory_mib} MiB`)]],
    [t('host.vms'), tNodes('host.vms.value', { running: h.vms_running, total: h.vms_total })],
    [t('host.overcommit'), tNodes('host.overcommit.value', { vcpus: h.vcpus_running, pcpus: h.pcpus, ratio: h.vcpu_overcommit })],
    [t('host.memory_running'), [val(`${h.memory_mib_running} MiB`)]],
    // The reason is the host view's own sentence (English, as the CLI prints it).
    [t('host.kvm_usable'), [t(h.kvm_usable ? 'common.yes' : 'common.no'), ' — ', el('span', { class: 'val', lang: 'en' }, h.kvm_reason)]],
    [t('host.new_vms'), [h.default_accel === 'kvm' ? val('KVM') : t('host.tcg')]],
    [t('hosts.versions'), [val(`QEMU ${h.qemu_version}, libvirt ${h.libvirt_version}`)]],
    [t('host.can_run'), Object.entries(h.emulated_arches).flatMap(([arch, types], i) => [i ? ', ' : '',
      ...tNodes('host.arch', { arch, accels: types.map((x) => ACCEL[x] || x).join(t('host.or')) })])],
  ];
  document.getElementById('host-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

async function loadIsos() {
  const isos = await api('GET', '/api/isos');
  document.querySelector('#iso-table tbody').replaceChildren(...(isos.length ? isos.map((iso) =>
    el('tr', { dataset: { iso: iso.name } }, el('td', { class: 'val' }, iso.name), el('td', { class: 'val' }, formatBytes(iso.size_bytes)),
      el('td', { class: 'val' }, iso.used_by.join(', ') || '–'),
      el('td', {}, el('button', { class: 'danger', disabled: iso.used_by.length > 0, onclick: () => remove(iso.name) }, t('power.delete')))))
    : [el('tr', {}, el('td', { colspan: 4, class: 'dim' }, t('iso.empty')))]));
}

async function remove(name) {
  const ok = await confirmDialog({ title: t('iso.delete.title', { iso: name }), confirm: t('power.delete'),
    message: tNodes('iso.delete.message', { iso: name }) });
  if (!ok) return;
  await track(t('iso.delete.task', { iso: name }), () => api('DELETE', `/api/isos/${encodeURIComponent(name)}`), () => t('iso.deleted', { iso: name }))
    .catch(() => {});
  loadIsos();
}

// XMLHttpRequest rather than fetch: it reports upload progress.
document.getElementById('iso-upload').addEventListener('click', () => {
  const file = document.getElementById('iso-file').files[0];
  if (!file) { toast(t('iso.choose'), true); return; }
  const progress = document.getElementById('iso-progress');
  const status = document.getElementById('iso-status');
  const xhr = new XMLHttpRequest();
  xhr.open('PUT', `/api/isos/${encodeURIComponent(file.name)}`);
  xhr.setRequestHeader('X-CSRF-Token', csrfToken);
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) progress.value = (100 * event.loaded) / event.total;
    status.replaceChildren(...tNodes('iso.progress', { done: formatBytes(event.loaded), total: formatBytes(event.total) }));
  };
  xhr.onload = () => {
    progress.hidden = true;
    if (xhr.status === 201) { status.replaceChildren(...tNodes('iso.uploaded', { iso: file.name })); loadIsos(); return; }
    let detail = `HTTP ${xhr.status}`;
    try { detail = JSON.parse(xhr.responseText).detail; } catch { /* not JSON */ }
    status.replaceChildren(val(detail));
    toast(val(detail), true);
  };
  xhr.onerror = () => { progress.hidden = true; status.textContent = t('iso.failed'); };
  progress.hidden = false;
  progress.value = 0;
  xhr.send(file);
});

loadFacts().catch((error) => toast(error.message, true));
loadIsos().catch((error) => toast(error.message, true));

// Host CPU and memory from the event stream's stats samples (libvirt's node statistics).
const HISTORY = 60;
const hostSeries = { cpu: [], mem: [], total: null };
function drawHost() {
  const axes = { capacity: HISTORY, interval: 2 };
  drawLines(document.getElementById('host-cpu'), [{ values: hostSeries.cpu }], { ...axes, max: 100, unit: '%' });
  drawLines(document.getElementById('host-mem'), [{ values: hostSeries.mem }],
    { ...axes, max: hostSeries.total ? Math.ceil(hostSeries.total) : null, unit: 'MiB' });
}
connectEvents((message) => {
  if (message.type !== 'stats' || !message.host) return;
  hostSeries.cpu = [...hostSeries.cpu, message.host.cpu_pct].slice(-HISTORY);
  hostSeries.mem = [...hostSeries.mem, message.host.memory_used_mib].slice(-HISTORY);
  hostSeries.total = message.host.memory_total_mib;
  drawHost();
});
drawHost();
