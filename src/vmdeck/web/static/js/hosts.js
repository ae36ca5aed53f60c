// Hosts page: GET /api/hosts as rows with capacity bars; drain / undrain; drain progress from the event stream.
import { api, connectEvents, el, toast } from './common.js';
import { t, tNodes, val } from './i18n.js';

const rows = document.getElementById('host-rows');
const log = document.getElementById('drain-log');

// label: the bar's words and values as nodes (its text is the tooltip too).
function bar(used, limit, label) {
  const pct = limit > 0 ? Math.min(100, Math.round((used / limit) * 100)) : 0;
  const text = el('span', { class: 'capacity-label' }, label);
  return el('div', { class: 'capacity', title: text.textContent },
    el('div', { class: 'capacity-fill', style: `width: ${pct}%`, dataset: { level: pct >= 90 ? 'high' : 'ok' } }), text);
}

function status(h) {
  if (!h.reachable) return el('span', { class: 'state', dataset: { state: 'crashed' }, title: h.reason }, t('hosts.unreachable'));
  if (h.draining) return el('span', { class: 'state', dataset: { state: 'paused' } }, t('hosts.draining'));
  return el('span', { class: 'state', dataset: { state: 'running' } }, t('hosts.up'));
}

async function act(name, action) {
  try {
    if (action === 'drain') log.replaceChildren();
    const result = await api('POST', `/api/hosts/${encodeURIComponent(name)}/${action}`);
    if (action === 'drain') {
      toast(t('hosts.drained', { host: name, moved: Object.keys(result.moved).length, left: Object.keys(result.failed).length }),
            !result.complete);
    }
  } catch (error) {
    toast([`${name}: `, val(error.message)], true);
  }
  load();
}

function row(h) {
  const usable = h.memory_mib - h.reserve_mib;
  return el('tr', { dataset: { host: h.name } },
    el('td', {}, el('strong', { class: 'val' }, h.name), el('div', { class: 'dim small val' }, h.uri)),
    el('td', {}, status(h), h.reachable ? '' : el('div', { class: 'dim small reason val' }, h.reason)),
    el('td', {}, h.reachable ? bar(h.memory_allocated_mib, usable,
      tNodes('hosts.memory', { used: h.memory_allocated_mib, usable, reserved: h.reserve_mib })) : '–',
      // Room held by creates placed here whose VMs do not run yet: placement counts it as used.
      h.reachable && h.pending_mib ? el('div', { class: 'dim small pending' },
        tNodes('hosts.pending', { mib: h.pending_mib, vcpus: h.pending_vcpus })) : ''),
    el('td', {}, h.reachable ? bar(h.vcpus_allocated, h.vcpu_limit,
      tNodes('hosts.vcpus', { used: h.vcpus_allocated, limit: h.vcpu_limit, pcpus: h.pcpus, ratio: h.vcpu_ratio })) : '–'),
    el('td', { class: 'val' }, h.reachable ? h.vms_running : '–'),
    el('td', { class: 'dim small val' }, h.reachable ? `libvirt ${h.libvirt_version}, QEMU ${h.qemu_version}` : ''),
    el('td', {}, h.draining
      ? el('button', { 'data-action': 'undrain', onclick: () => act(h.name, 'undrain') }, t('hosts.undrain'))
      : el('button', { 'data-action': 'drain', disabled: !h.reachable, onclick: () => act(h.name, 'drain') }, t('hosts.drain'))));
}

async function load() {
  const hosts = await api('GET', '/api/hosts');
  rows.replaceChildren(...hosts.map(row));
}

connectEvents((message) => {
  if (message.type === 'drain') log.append(el('li', { class: 'val' }, `${message.host}: ${message.line}`));
  else if (message.type === 'state' || message.type === 'inventory') load().catch(() => {});
});
load().catch((error) => toast(error.message, true));
