// Hosts page: GET /api/hosts as rows with capacity bars; drain / undrain; drain progress from the event stream.
import { api, connectEvents, el, toast } from './common.js';

const rows = document.getElementById('host-rows');
const log = document.getElementById('drain-log');

function bar(used, limit, label) {
  const pct = limit > 0 ? Math.min(100, Math.round((used / limit) * 100)) : 0;
  return el('div', { class: 'capacity', title: label },
    el('div', { class: 'capacity-fill', style: `width: ${pct}%`, dataset: { level: pct >= 90 ? 'high' : 'ok' } }),
    el('span', { class: 'capacity-label' }, label));
}

function status(h) {
  if (!h.reachable) return el('span', { class: 'state', dataset: { state: 'crashed' }, title: h.reason }, 'unreachable');
  if (h.draining) return el('span', { class: 'state', dataset: { state: 'paused' } }, 'draining');
  return el('span', { class: 'state', dataset: { state: 'running' } }, 'up');
}

async function act(name, action) {
  try {
    if (action === 'drain') log.replaceChildren();
    const result = await api('POST', `/api/hosts/${encodeURIComponent(name)}/${action}`);
    if (action === 'drain') {
      toast(`${name}: ${Object.keys(result.moved).length} VM(s) moved, ${Object.keys(result.failed).length} left`,
            !result.complete);
    }
  } catch (error) {
    toast(`${name}: ${error.message}`, true);
  }
  load();
}

function row(h) {
  const usable = h.memory_mib - h.reserve_mib;
  return el('tr', { dataset: { host: h.name } },
    el('td', {}, el('strong', {}, h.name), el('div', { class: 'dim small' }, h.uri)),
    el('td', {}, status(h), h.reachable ? '' : el('div', { class: 'dim small reason' }, h.reason)),
    el('td', {}, h.reachable ? bar(h.memory_allocated_mib, usable,
      `${h.memory_allocated_mib} / ${usable} MiB (${h.reserve_mib} reserved)`) : '–',
      // Room held by creates placed here whose VMs do not run yet: placement counts it as used.
      h.reachable && h.pending_mib ? el('div', { class: 'dim small pending' },
        `${h.pending_mib} MiB, ${h.pending_vcpus} vCPU held for creates in progress`) : ''),
    el('td', {}, h.reachable ? bar(h.vcpus_allocated, h.vcpu_limit,
      `${h.vcpus_allocated} / ${h.vcpu_limit} (${h.pcpus} pCPUs × ${h.vcpu_ratio})`) : '–'),
    el('td', {}, h.reachable ? h.vms_running : '–'),
    el('td', { class: 'dim small' }, h.reachable ? `libvirt ${h.libvirt_version}, QEMU ${h.qemu_version}` : ''),
    el('td', {}, h.draining
      ? el('button', { 'data-action': 'undrain', onclick: () => act(h.name, 'undrain') }, 'Undrain')
      : el('button', { 'data-action': 'drain', disabled: !h.reachable, onclick: () => act(h.name, 'drain') }, 'Drain')));
}

async function load() {
  const hosts = await api('GET', '/api/hosts');
  rows.replaceChildren(...hosts.map(row));
}

connectEvents((message) => {
  if (message.type === 'drain') log.append(el('li', {}, `${message.host}: ${message.line}`));
  else if (message.type === 'state' || message.type === 'inventory') load().catch(() => {});
});
load().catch((error) => toast(error.message, true));
