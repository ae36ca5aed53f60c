// The Network tab's addresses (nic_addresses.html): each NIC's network and MAC from the VM's definition,
// and the addresses the guest's agent reports for that MAC while the VM runs. Re-read whenever vm.js
// re-reads the VM's devices (the `vm:devices` event).
import { api, el } from './common.js';
import { loadMessages, t, val } from './i18n.js';

const name = document.getElementById('vm').dataset.vm;
const enc = encodeURIComponent(name);

function networkOf(nic) {
  return nic.kind === 'user' ? t('nics.user_network') : val(nic.network || nic.kind);
}

async function guestAddresses(vm) {
  // mac -> addresses; null while the VM is off; an Error when the agent did not answer.
  if (vm.state !== 'running') return null;
  try {
    const guest = await api('GET', `/api/vms/${enc}/guest`);
    const byMac = new Map();
    for (const nic of guest.interfaces) {
      if (!nic.mac) continue;
      byMac.set(nic.mac.toLowerCase(), nic.addresses.filter((a) => !a.startsWith('fe80:')).map((a) => a.split('/')[0]));
    }
    return byMac;
  } catch (error) {
    return error;
  }
}

function addressText(found, mac) {
  if (found === null) return t('nics.off');
  if (found === 'asking') return t('nics.asking');
  if (found instanceof Error) return t('nics.unknown', { error: found.message });
  const addresses = found.get((mac || '').toLowerCase()) || [];
  return addresses.length ? val(addresses.join(', ')) : t('nics.no_address');
}

// The addresses of the guest's interfaces that are none of libvirt's NICs (QEMU's own user-mode NIC).
function otherAddresses(found, nics) {
  if (!(found instanceof Map)) return addressText(found, '');
  const known = new Set(nics.map((n) => (n.mac || '').toLowerCase()));
  const rest = [...found].filter(([mac]) => !known.has(mac)).flatMap(([, addresses]) => addresses)
    .filter((a) => !a.startsWith('127.') && a !== '::1');
  return rest.length ? val(rest.join(', ')) : t('nics.no_address');
}

let reading = false;
async function load() {
  if (reading) return;
  reading = true;
  try {
    const vm = await api('GET', `/api/vms/${enc}`);
    const nics = [...vm.nics];
    const body = document.querySelector('#nic-addresses tbody');
    if (!nics.length && !(vm.port_forwards || []).length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 3, class: 'dim' }, t('nics.none'))));
      return;
    }
    const draw = (found) => body.replaceChildren(...nics.map((nic) => el('tr', { dataset: { mac: nic.mac || '' } },
      el('td', {}, networkOf(nic)), el('td', { class: 'val' }, nic.mac || '–'), el('td', { class: 'address' }, addressText(found, nic.mac)))),
    // vmdeck's own user-mode NIC for the SSH forward is on QEMU's command line, not among libvirt's NICs.
    ...((vm.port_forwards || []).some((f) => f.guest_port === 22) && !nics.some((n) => n.kind === 'user')
      ? [el('tr', { dataset: { mac: '' } }, el('td', {}, t('nics.ssh_forward')), el('td', {}, '–'),
        el('td', { class: 'address' }, otherAddresses(found, nics)))]
      : []));
    draw(vm.state === 'running' ? 'asking' : null);
    if (vm.state === 'running') draw(await guestAddresses(vm));
    document.getElementById('nic-addresses-panel').dataset.loaded = 'true';
  } catch { /* the VM page says what went wrong */ } finally {
    reading = false;
  }
}

document.addEventListener('vm:devices', () => load());
await loadMessages();
load();
