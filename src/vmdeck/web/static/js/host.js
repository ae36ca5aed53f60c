// Host page: capacity, overcommit and KVM usability; the ISO library (upload with progress, delete).
import { api, confirmDialog, connectEvents, csrfToken, drawLines, el, formatBytes, toast, track } from './common.js';

async function loadFacts() {
  const h = await api('GET', '/api/host');
  const facts = [
    ['Host', `${h.hostname} (${h.uri})`], ['CPU', `${h.cpu_vendor} ${h.cpu_model}, ${h.pcpus} CPUs`],
    ['Memory', `${h.memory_mib} MiB`],
    ['VMs', `${h.vms_running} running of ${h.vms_total}`],
    ['vCPU overcommit', `${h.vcpus_running} vCPUs on ${h.pcpus} CPUs (${h.vcpu_overcommit}x)`],
    ['Memory of running VMs', `${h.memory_mib_running} MiB`],
    ['KVM usable', `${h.kvm_usable ? 'yes' : 'no'} — ${h.kvm_reason}`],
    ['New VMs use', h.default_accel === 'kvm' ? 'KVM' : 'TCG (QEMU emulates the CPU)'],
    ['Versions', `QEMU ${h.qemu_version}, libvirt ${h.libvirt_version}`],
    // libvirt's domain types in the CLI's words: kvm is KVM (hardware), qemu is TCG (QEMU emulates the CPU).
    ['Can run', Object.entries(h.emulated_arches).map(([a, t]) => `${a} (${t.map((x) => ({ kvm: 'KVM', qemu: 'TCG' })[x] || x).join(' or ')})`).join(', ')],
  ];
  document.getElementById('host-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

async function loadIsos() {
  const isos = await api('GET', '/api/isos');
  document.querySelector('#iso-table tbody').replaceChildren(...(isos.length ? isos.map((iso) =>
    el('tr', { dataset: { iso: iso.name } }, el('td', {}, iso.name), el('td', {}, formatBytes(iso.size_bytes)),
      el('td', {}, iso.used_by.join(', ') || '–'),
      el('td', {}, el('button', { class: 'danger', disabled: iso.used_by.length > 0, onclick: () => remove(iso.name) }, 'Delete'))))
    : [el('tr', {}, el('td', { colspan: 4, class: 'dim' }, 'The library is empty.'))]));
}

async function remove(name) {
  const ok = await confirmDialog({ title: `Delete ${name}?`, confirm: 'Delete',
    message: `The ISO image ${name} is deleted from the host's ISO library; a copy you keep elsewhere is not touched.` });
  if (!ok) return;
  await track(`Delete ISO ${name}`, () => api('DELETE', `/api/isos/${encodeURIComponent(name)}`), () => `${name} deleted`)
    .catch(() => {});
  loadIsos();
}

// XMLHttpRequest rather than fetch: it reports upload progress.
document.getElementById('iso-upload').addEventListener('click', () => {
  const file = document.getElementById('iso-file').files[0];
  if (!file) { toast('Choose an .iso file first.', true); return; }
  const progress = document.getElementById('iso-progress');
  const status = document.getElementById('iso-status');
  const xhr = new XMLHttpRequest();
  xhr.open('PUT', `/api/isos/${encodeURIComponent(file.name)}`);
  xhr.setRequestHeader('X-CSRF-Token', csrfToken);
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) progress.value = (100 * event.loaded) / event.total;
    status.textContent = `${formatBytes(event.loaded)} of ${formatBytes(event.total)}`;
  };
  xhr.onload = () => {
    progress.hidden = true;
    if (xhr.status === 201) { status.textContent = `${file.name} uploaded`; loadIsos(); return; }
    let detail = `HTTP ${xhr.status}`;
    try { detail = JSON.parse(xhr.responseText).detail; } catch { /* not JSON */ }
    status.textContent = detail;
    toast(detail, true);
  };
  xhr.onerror = () => { progress.hidden = true; status.textContent = 'upload failed'; };
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
