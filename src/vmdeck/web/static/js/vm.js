// VM page, in tabs: Overview (facts, live charts), Console (noVNC through the ticketed proxy, with a
// toolbar), Serial (xterm.js), Disks & media, Network, Settings, Host view. All through the REST API
// and the event stream; every destructive control asks first, naming what would be lost.
import RFB from '/static/vendor/novnc/core/rfb.js';
import { Terminal } from '/static/vendor/xterm/xterm.mjs';
import { FitAddon } from '/static/vendor/xterm/addon-fit.mjs';
import { allowedActions, api, confirmDialog, connectEvents, el, noteForNextPage, powerAction, stateWord, toast, track, wsUrl } from './common.js';
import { t, tNodes, val } from './i18n.js';
import { startHostView } from './hostview.js';

const name = document.getElementById('vm').dataset.vm;
const enc = encodeURIComponent(name);
let state = null;
let vmActive = false;  // a QEMU process exists (the state allows power off)
let vmInfo = null;
let rfb = null;
let serialSocket = null;
const connecting = { vnc: false, serial: false };

// --- tabs ------------------------------------------------------------------------------------------------
const tabs = document.getElementById('tabs');
function showTab(tab) {
  if (!document.getElementById(`tab-${tab}`)) tab = 'overview';
  for (const button of tabs.querySelectorAll('[data-tab]')) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
  for (const panel of document.querySelectorAll('.tab[role=tabpanel]')) panel.hidden = panel.dataset.tab !== tab;
  document.body.dataset.tab = tab;
  if (tab === 'serial') fit.fit();
  if (tab === 'console') rfb?.focus();
}
tabs.addEventListener('click', (event) => {
  const tab = event.target.closest('[data-tab]')?.dataset.tab;
  if (!tab) return;
  history.replaceState(null, '', `#${tab}`);
  showTab(tab);
});

// --- state and power -------------------------------------------------------------------------------------
// `source` is a VM from the API, a power reply or a state event: each carries allowed_actions and `can`.
function setState(next, source) {
  const allowed = allowedActions(source);
  for (const button of document.querySelectorAll('#power button')) button.disabled = !allowed.has(button.dataset.action);
  vmActive = allowed.has('poweroff');
  if (state === next) return;
  state = next;
  const badge = document.getElementById('vm-state');
  badge.textContent = stateWord(next);
  badge.dataset.state = next;
  // Power off is allowed exactly while a QEMU process exists: only then is there a screen or a serial port.
  const active = allowed.has('poweroff');
  document.body.dataset.vmActive = String(active);
  // The screenshot stays: on a stopped VM it answers with the API's reason instead of a picture.
  for (const control of document.querySelectorAll('#console-tools button:not(#console-shot), #console-tools select, #serial-connect')) {
    control.disabled = !active;
  }
  if (!active) document.getElementById('console-paste').hidden = true;
  if (source?.can?.console) {
    // QEMU's VNC server exists as soon as the process does: connect the screen and the serial port.
    // (A start passes through "paused" on its way to "running": connect once, whichever comes first.)
    if (!rfb && !connecting.vnc) connectConsole();
    if (!serialSocket && !connecting.serial) connectSerial();
  }
  if (!active) { rfb?.disconnect(); serialSocket?.close(); }
}

async function refresh() {
  const vm = await api('GET', `/api/vms/${enc}`);
  vmInfo = vm;
  const pending = vm.pending || {};
  document.getElementById('vm-summary').replaceChildren(val(`${vm.arch} ${vm.machine}`), ' · ',
    ...withPendingNodes(vm.vcpus, pending.vcpus, ' vCPU'), ' · ', ...withPendingNodes(vm.memory_mib, pending.memory_mib, ' MiB'),
    ' · ', val(vm.accel), ' · ', ...tNodes('vm.summary.template', { template: vm.template || '–' }));
  renderPending(vm);
  renderOverview(vm);
  renderMedia(vm.disks.filter((d) => d.device === 'cdrom'));
  renderSettings(vm);
  setState(vm.state, vm);
  return vm;
}

document.getElementById('power').addEventListener('click', async (event) => {
  const action = event.target.closest('button')?.dataset.action;
  if (!action) return;
  try {
    const result = await powerAction(name, action, { running: vmActive });
    if (result === null) return;  // cancelled
    if (action === 'delete') { noteForNextPage(t('power.deleted', { vm: name }), { record: false }); location.href = '/'; return; }
    if (result?.state) setState(result.state, result);
    refresh().catch(() => {});
  } catch { /* the notice says what went wrong */ }
});

// --- changes waiting for the next boot (as Proxmox shows them: the new value beside the running one) ---
function withPending(live, next, unit) {
  return next === undefined ? `${live}${unit}` : t('vm.pending.value', { live: `${live}${unit}`, next: `${next}${unit}` });
}
// The same as nodes: the values in .val spans, the words around them from the catalog.
function withPendingNodes(live, next, unit) {
  return next === undefined ? [val(`${live}${unit}`)] : tNodes('vm.pending.value', { live: `${live}${unit}`, next: `${next}${unit}` });
}

function renderPending(vm) {
  const pending = vm.pending || {};
  const box = document.getElementById('vm-pending');
  const parts = [];
  if (pending.vcpus !== undefined) parts.push(tNodes('vm.pending.vcpus', { next: pending.vcpus, now: vm.vcpus }));
  if (pending.memory_mib !== undefined) parts.push(tNodes('vm.pending.memory', { next: pending.memory_mib, now: vm.memory_mib }));
  box.hidden = !parts.length;
  const list = parts.flatMap((nodes, i) => (i ? [', ', ...nodes] : nodes));
  document.getElementById('vm-pending-text').replaceChildren(...(parts.length
    ? tNodes('vm.pending.waiting', { changes: el('span', {}, list) }) : []));
  // vCPUs can be plugged in while it runs when its definition leaves room (a maximum above the count).
  const apply = document.getElementById('pending-apply');
  const room = vm.live_limits?.vcpus_max;
  if (apply) apply.hidden = !(pending.vcpus !== undefined && room && pending.vcpus <= room);
}

document.getElementById('pending-apply')?.addEventListener('click', async () => {
  try {
    await track(t('vm.pending.task', { vm: name }), () => api('POST', `/api/vms/${enc}/apply-pending`),
      (reply) => t(Object.keys(reply.applied).length ? 'vm.pending.applied' : 'vm.pending.nothing', { vm: name })
        + (Object.keys(reply.still_pending).length ? t('vm.pending.rest') : ''));
  } catch { /* the notice says why */ }
  refresh().catch(() => {});
});

// --- overview ------------------------------------------------------------------------------------------------
function renderOverview(vm) {
  const disks = vm.disks.filter((d) => d.device !== 'cdrom');
  const facts = [
    [t('common.state'), [stateWord(vm.state)]], [t('common.vcpus'), withPendingNodes(vm.vcpus, vm.pending?.vcpus, '')],
    [t('common.memory'), withPendingNodes(vm.memory_mib, vm.pending?.memory_mib, ' MiB')],
    [t('vm.fact.machine'), [val(`${vm.arch} ${vm.machine} (${vm.accel})`)]], [t('common.template'), [val(vm.template || '–')]],
    [t('disks.title'), [disks.length ? val(disks.map((d) => `${d.target} (${d.bus})`).join(', ')) : t('common.none')]],
    [t('vm.fact.nics'), nicSummary(vm)],
    [t('vm.fact.autostart'), [t(vm.autostart ? 'common.yes' : 'common.no')]],
  ];
  document.getElementById('overview-facts').replaceChildren(
    ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  renderAccess(vm);
}

// The NICs libvirt lists, and the user-mode NIC vmdeck gives QEMU itself for the SSH forward (it is on
// QEMU's command line, not among libvirt's interfaces).
function nicSummary(vm) {
  const nics = vm.nics.map((n) => (n.kind === 'user'
    ? tNodes('vm.nic.user', { model: n.model || 'nic', mac: n.mac })
    : tNodes('vm.nic.on', { model: n.model || 'nic', network: n.network || n.kind, mac: n.mac })));
  if (sshForward(vm) && !vm.nics.some((n) => n.kind === 'user')) nics.push(tNodes('vm.nic.forward', { model: 'virtio' }));
  return nics.length ? nics.flatMap((nodes, i) => (i ? ['; ', ...nodes] : nodes)) : [t('common.none')];
}

function sshForward(vm) {
  return (vm.port_forwards || []).find((f) => f.guest_port === 22 && f.proto === 'tcp');
}

// Access: how to reach the guest — its addresses (from its agent, while it runs), the SSH forward as a
// command to copy, and the login user its image was set up with.
let guestAsked = 0;
function renderAccess(vm) {
  const forward = sshForward(vm);
  const user = vm.extra?.['login-user'];
  const facts = [['Login user', t('vm.access.login'), user ? [val(user)] : [vm.extra?.['base-image'] ? t('vm.access.login.default') : '–']]];
  facts.push(['SSH', t('vm.access.ssh'), forward ? tNodes('vm.access.forward', { port: forward.host_port, address: forward.address || '127.0.0.1' })
    : [t('vm.access.no_forward')]]);
  facts.push(['Addresses', t('vm.access.addresses'), vm.state === 'running' ? (guestAddresses ?? [t('vm.access.asking')]) : [t('vm.access.when_running')]]);
  document.getElementById('access-facts').replaceChildren(...facts.flatMap(([fact, k, v]) => [el('dt', {}, k), el('dd', { dataset: { fact } }, v)]));
  const line = document.getElementById('ssh-line');
  line.hidden = !forward;
  const note = document.getElementById('ssh-note');
  note.hidden = !forward;
  if (forward) {
    document.getElementById('ssh-command').textContent = `ssh -p ${forward.host_port} ${user || 'USER'}@${forward.address || '127.0.0.1'}`;
    note.replaceChildren(...tNodes('vm.access.note', { command: `vmdeck ssh ${name}`, address: '10.0.2.15' }));
  }
  if (vm.state === 'running' && Date.now() - guestAsked > 30000) { guestAsked = Date.now(); loadGuestAddresses(); }
  if (vm.state !== 'running') { guestAddresses = null; guestAsked = 0; }
}

let guestAddresses = null;
async function loadGuestAddresses() {
  try {
    const guest = await api('GET', `/api/vms/${enc}/guest`);
    const shown = guest.interfaces.filter((i) => i.name !== 'lo' && i.addresses.length)
      .map((i) => `${i.name}: ${i.addresses.filter((a) => !a.startsWith('fe80:')).join(', ')}`);
    guestAddresses = shown.length ? [val(shown.join('; '))] : [t('vm.access.none_reported')];
  } catch (error) {
    guestAddresses = tNodes('vm.access.unknown', { reason: error.message });
  }
  if (vmInfo) renderAccess(vmInfo);
}

document.getElementById('ssh-copy').addEventListener('click', async () => {
  const command = document.getElementById('ssh-command').textContent;
  try {
    await navigator.clipboard.writeText(command);
    toast(t('vm.access.copied'));
  } catch {
    toast(t('common.copy_refused'), true);
  }
});

// --- the screen and its toolbar ---------------------------------------------------------------------------
const screen = document.getElementById('screen');
const consoleStatus = document.getElementById('console-status');
const scaleSelect = document.getElementById('console-scale');

// Scale to fit: the guest's screen scaled into the box; 1:1: its own pixels (the box scrolls);
// Resize the guest: the guest is asked to take the box's size (needs a guest driver that supports it).
function applyScale(session = rfb) {
  const mode = scaleSelect.value;
  screen.dataset.scale = mode;
  if (!session) return;
  session.scaleViewport = mode === 'fit';
  session.clipViewport = false;
  session.resizeSession = mode === 'remote';
}
scaleSelect.addEventListener('change', () => {
  // noVNC learns whether the guest accepts a new screen size from its first update (the ExtendedDesktopSize
  // extension); without it "Resize the guest" would do nothing at all, so say so and keep scaling.
  if (scaleSelect.value === 'remote' && rfb && rfb._supportsSetDesktopSize === false) {
    toast(t('console.no_resize'), true);
    scaleSelect.value = 'fit';
  }
  applyScale();
});

async function connectConsole() {
  if (rfb) { rfb.disconnect(); rfb = null; }
  connecting.vnc = true;
  try {
    // The ticket is single-use and bound to this user and VM; the proxy maps it to QEMU's socket.
    const ticket = await api('POST', `/api/vms/${enc}/console/ticket`, { kind: 'vnc' });
    const session = new RFB(screen, wsUrl(ticket.path), { wsProtocols: ['binary'] });
    applyScale(session);
    session.focusOnClick = true;
    session.addEventListener('connect', () => {
      consoleStatus.textContent = t('console.connected');
      screen.dataset.connected = 'true';
      if (document.body.dataset.tab === 'console') session.focus();
    });
    session.addEventListener('disconnect', () => {
      consoleStatus.textContent = t('console.disconnected');
      screen.dataset.connected = 'false';
      if (rfb === session) rfb = null;
    });
    rfb = session;
  } catch (error) {
    consoleStatus.replaceChildren(val(error.message));
  } finally {
    connecting.vnc = false;
  }
}

document.getElementById('console-connect').addEventListener('click', connectConsole);
document.getElementById('console-full').addEventListener('click', () => screen.requestFullscreen?.());

const keySelect = document.getElementById('console-keys');
keySelect.addEventListener('change', async () => {
  const combo = keySelect.value;
  const label = keySelect.selectedOptions[0]?.textContent;
  keySelect.value = '';
  if (!combo) return;
  await track(t('console.keys.task', { keys: label, vm: name }), () => api('POST', `/api/vms/${enc}/keys`, { keys: [combo] }),
    () => t('console.keys.sent', { keys: label, vm: name })).catch(() => {});
  rfb?.focus();
});

const paste = document.getElementById('console-paste');
const pasteText = document.getElementById('console-paste-text');
document.getElementById('console-paste-open').addEventListener('click', () => { paste.hidden = false; pasteText.focus(); });
document.getElementById('console-paste-cancel').addEventListener('click', () => { paste.hidden = true; });
document.getElementById('console-paste-send').addEventListener('click', async () => {
  const text = pasteText.value;
  if (!text) { toast(t('console.paste.empty'), true); return; }
  try {
    await track(t('console.paste.task', { n: text.length, vm: name }), () => api('POST', `/api/vms/${enc}/type`, { text }),
      (result) => t('console.paste.typed', { n: result.pressed, vm: name }));
    pasteText.value = '';
    paste.hidden = true;
  } catch { /* the notice says why */ }
});

// The screenshot comes from the API (libvirt's screenshot), so a 409 for a stopped VM becomes a notice.
document.getElementById('console-shot').addEventListener('click', () => takeScreenshot());
async function takeScreenshot() {
  try {
    const response = await fetch(`/api/vms/${enc}/screenshot`, { credentials: 'same-origin' });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.detail || `HTTP ${response.status}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const link = el('a', { href: url, download: `${name}.png` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    toast(t('console.screenshot.saved', { vm: name }));
  } catch (error) {
    toast([`${t('console.screenshot')}: `, val(error.message)], true);
  }
}

// --- the serial terminal -------------------------------------------------------------------------------------
const terminal = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 2000 });
const fit = new FitAddon();
terminal.loadAddon(fit);
terminal.open(document.getElementById('terminal'));
window.addEventListener('resize', () => { if (document.body.dataset.tab === 'serial') fit.fit(); });
const serialStatus = document.getElementById('serial-status');
const encoder = new TextEncoder();
terminal.onData((data) => {
  if (serialSocket?.readyState === WebSocket.OPEN) serialSocket.send(encoder.encode(data));
});

async function connectSerial() {
  serialSocket?.close();
  connecting.serial = true;
  try {
    const ticket = await api('POST', `/api/vms/${enc}/console/ticket`, { kind: 'serial' });
    const socket = new WebSocket(wsUrl(ticket.path));
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      serialStatus.textContent = t('console.connected');
      document.getElementById('terminal').dataset.connected = 'true';
      // The serial port sends nothing until the guest writes: say so, rather than show a blank box.
      // (Written here only, not sent to the guest.)
      terminal.write(`\x1b[2m[${t('serial.connected')}]\x1b[0m\r\n`);
    };
    socket.onmessage = (event) => terminal.write(new Uint8Array(event.data));
    socket.onclose = () => {
      serialStatus.textContent = t('console.disconnected');
      document.getElementById('terminal').dataset.connected = 'false';
      if (serialSocket === socket) serialSocket = null;
    };
    serialSocket = socket;
  } catch (error) {
    serialStatus.replaceChildren(val(error.message));
  } finally {
    connecting.serial = false;
  }
}
document.getElementById('serial-connect').addEventListener('click', connectSerial);

// --- CD/DVD media -------------------------------------------------------------------------------------------------
let drives = [];
function renderMedia(cdroms) {
  drives = cdroms;
  const body = document.querySelector('#media-table tbody');
  body.replaceChildren(...(cdroms.length ? cdroms.map((d) => el('tr', { dataset: { drive: d.target } },
    el('td', { class: 'val' }, d.target), el('td', { class: 'val' }, d.bus),
    el('td', { class: 'disc' }, d.source ? val(d.source.split('/').pop()) : t('media.empty')),
    el('td', {}, el('button', { class: 'eject', dataset: { need: 'operator' }, disabled: !d.source, onclick: () => eject(d.target) }, t('media.eject')))))
    : [el('tr', {}, el('td', { colspan: 4, class: 'dim' }, t('media.none')))]));
}

async function eject(drive) {
  await track(t('media.eject.task', { drive, vm: name }), () => api('DELETE', `/api/vms/${enc}/media?drive=${encodeURIComponent(drive)}`),
    (change) => change.message).catch(() => {});
  refresh();
}

async function loadIsos() {
  const isos = await api('GET', '/api/isos');
  document.getElementById('media-iso').replaceChildren(...isos.map((iso) => el('option', { value: iso.name, class: 'val' }, iso.name)));
}

document.getElementById('media-insert').addEventListener('click', async () => {
  const iso = document.getElementById('media-iso').value;
  if (!iso) { toast(t('media.library_empty'), true); return; }
  await track(t('media.insert.task', { iso, vm: name }), () => api('POST', `/api/vms/${enc}/media`, { iso, drive: drives[0]?.target ?? null }),
    (change) => change.message).catch(() => {});
  refresh();
  loadDevices();
});

// --- disks and NICs ---------------------------------------------------------------------------------------------------
async function loadDevices() {
  const rows = await api('GET', `/api/vms/${enc}/devices`);
  const nics = rows.filter((row) => row.kind === 'nic');
  document.dispatchEvent(new CustomEvent('vm:devices', { detail: rows }));  // the disks: storage.js
  document.querySelector('#nic-table tbody').replaceChildren(...(nics.length ? nics.map((row) =>
    el('tr', { dataset: { kind: row.kind, key: row.key } }, el('td', { class: 'val' }, row.key), el('td', { class: 'val' }, row.bus),
      el('td', { class: 'val' }, row.source || ''), el('td', {}, deviceStatus(row.status)),
      el('td', {}, el('button', { class: 'danger remove', dataset: { need: 'manager' }, onclick: () => removeNic(row) }, t('common.remove')))))
    : [el('tr', {}, el('td', { colspan: 5, class: 'dim' }, t('nics.none')))]));
}

// The device table's status words ("live", "next boot", ...) are the server's: each has a catalog entry.
function deviceStatus(status) {
  return status ? t(`device.status.${String(status).replace(/[^a-z0-9]+/gi, '_')}`) : '';
}

async function removeNic(row) {
  const live = vmActive ? [' ', ...tNodes('nics.remove.live', { vm: name })] : [];
  const ok = await confirmDialog({
    title: t('nics.remove.title', { nic: row.key, vm: name }),
    message: [...tNodes('nics.remove.message', { nic: row.key, model: row.bus, network: row.source || '–' }), ...live],
    confirm: t('common.remove'),
  });
  if (!ok) return;
  await track(t('nics.remove.task', { nic: row.key, vm: name }), () => api('DELETE', `/api/vms/${enc}/nics/${encodeURIComponent(row.key)}`),
    (change) => change.message).catch(() => {});
  loadDevices();
}

document.getElementById('nic-add').addEventListener('click', async () => {
  const body = { model: document.getElementById('nic-model').value, network: 'user' };
  await track(t('nics.add.task', { vm: name }), () => api('POST', `/api/vms/${enc}/nics`, body), (change) => change.message).catch(() => {});
  loadDevices();
});

// --- settings ------------------------------------------------------------------------------------------------------------
const settingsForm = document.getElementById('settings-form');
let settingsDirty = false;
settingsForm.addEventListener('input', () => { settingsDirty = true; });
function renderSettings(vm) {
  // The form edits the definition the next boot uses; a running VM's own values are shown beneath.
  const pending = vm.pending || {};
  if (!settingsDirty) {
    settingsForm.vcpus.value = pending.vcpus ?? vm.vcpus;
    settingsForm.memory_mib.value = pending.memory_mib ?? vm.memory_mib;
  }
  for (const [field, live, unit] of [['vcpus', vm.vcpus, ' vCPU'], ['memory_mib', vm.memory_mib, ' MiB']]) {
    const note = settingsForm.querySelector(`.live-value[data-for="${field}"]`);
    note.hidden = pending[field] === undefined;
    note.replaceChildren(...(note.hidden ? [] : tNodes('settings.pending', { live: `${live}${unit}`, next: `${pending[field]}${unit}` })));
  }
  document.getElementById('s-autostart').checked = !!vm.autostart;
  if (!bootDirty) renderBoot(vm.boot_order || []);
  document.getElementById('boot-note').textContent = t(vm.boot_kind === 'kernel' ? 'boot.note.kernel' : 'boot.note');
}

// Boot order: the ticked devices, top to bottom; unticked ones are not tried.
const BOOT_LABELS = { hd: t('boot.hd'), cdrom: t('boot.cdrom'), network: t('boot.network') };
const bootList = document.getElementById('boot-list');
let bootDirty = false;
function renderBoot(order) {
  const devices = [...order, ...Object.keys(BOOT_LABELS).filter((dev) => !order.includes(dev))];
  bootList.replaceChildren(...devices.map((dev) => el('li', { dataset: { dev } },
    el('label', { class: 'check' }, el('input', { type: 'checkbox', checked: order.includes(dev) }), BOOT_LABELS[dev] || dev),
    el('button', { type: 'button', class: 'up', 'aria-label': t('boot.up', { device: BOOT_LABELS[dev] }) }, '↑'),
    el('button', { type: 'button', class: 'down', 'aria-label': t('boot.down', { device: BOOT_LABELS[dev] }) }, '↓'))));
}
bootList.addEventListener('click', (event) => {
  const item = event.target.closest('li');
  if (!item) return;
  if (event.target.classList.contains('up') && item.previousElementSibling) item.previousElementSibling.before(item);
  else if (event.target.classList.contains('down') && item.nextElementSibling) item.nextElementSibling.after(item);
  else return;
  bootDirty = true;
});
bootList.addEventListener('change', () => { bootDirty = true; });
document.getElementById('boot-save').addEventListener('click', async () => {
  const order = [...bootList.querySelectorAll('li')].filter((li) => li.querySelector('input').checked).map((li) => li.dataset.dev);
  try {
    await track(t('boot.task', { vm: name }), () => api('PATCH', `/api/vms/${enc}`, { boot_order: order }),
      (reply) => t('boot.done', { vm: name, order: reply.boot_order.map((dev) => BOOT_LABELS[dev] || dev).join(t('boot.then')) }));
    bootDirty = false;
    refresh();
  } catch { /* the notice says why */ }
});

settingsForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  for (const p of settingsForm.querySelectorAll('.field-error')) { p.hidden = true; p.textContent = ''; }
  const body = { vcpus: Number(settingsForm.vcpus.value), memory_mib: Number(settingsForm.memory_mib.value) };
  try {
    await track(t('settings.task', { vm: name }), () => api('PATCH', `/api/vms/${enc}`, body),
      (change) => t('settings.done', { vm: name, vcpus: change.vcpus, memory: change.memory_mib, applies: change.applies }));
    settingsDirty = false;
    refresh();
  } catch (error) {
    const slot = settingsForm.querySelector(`.field-error[data-for="${error.field}"]`);
    if (slot) { slot.replaceChildren(val(error.message)); slot.hidden = false; }
  }
});

document.getElementById('s-autostart').addEventListener('change', async (event) => {
  const autostart = event.target.checked;
  await track(t(autostart ? 'settings.autostart.on' : 'settings.autostart.off', { vm: name }), () => api('PATCH', `/api/vms/${enc}`, { autostart }),
    () => t(autostart ? 'settings.autostart.on_done' : 'settings.autostart.off_done', { vm: name })).catch(() => {});
  refresh();
});

// --- live updates ------------------------------------------------------------------------------------------------------------
// Every tab follows the stream: a state change, a device added or removed, media inserted or ejected, a
// definition rewritten (from the CLI, another browser, virsh) re-reads the VM; bursts are read once.
let reloadTimer = null;
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    refresh().then(() => loadDevices()).catch((error) => { if (error.status === 404) markDeleted(); });
  }, 300);
}

// Deleted elsewhere: nothing on the page can act on it any more.
let deleted = false;
function markDeleted() {
  if (deleted) return;
  deleted = true;
  state = 'deleted';
  const badge = document.getElementById('vm-state');
  badge.textContent = stateWord('deleted');
  badge.dataset.state = 'deleted';
  document.body.dataset.vmDeleted = 'true';
  document.body.dataset.vmActive = 'false';
  rfb?.disconnect();
  serialSocket?.close();
  for (const control of document.querySelectorAll('main button:not([role=tab]), main input, main select, main textarea')) {
    control.disabled = true;
  }
  const notice = document.getElementById('vm-deleted');
  notice.hidden = false;
}

connectEvents((message) => {
  if (deleted || message.vm !== name) {
    if (!deleted && message.type === 'inventory' && !message.vm) reloadSoon();  // reconnected: re-read
    return;
  }
  if (message.type === 'state' && message.state) {
    setState(message.state, message);
    reloadSoon();
  } else if (message.type === 'inventory' || message.type === 'device') {
    reloadSoon();
  }
});

showTab(location.hash.slice(1) || 'overview');
window.addEventListener('hashchange', () => showTab(location.hash.slice(1) || 'overview'));
document.body.dataset.vmActive = 'false';
refresh().then(() => loadDevices()).catch((error) => toast(error.message, true));
loadIsos().catch(() => {});
startHostView(name, () => state);
