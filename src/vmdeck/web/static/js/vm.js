// VM page: state and power, the screen (noVNC through the ticketed proxy), the serial terminal
// (xterm.js), CD/DVD media, devices and the host view. All through the REST API and event stream.
import RFB from '/static/vendor/novnc/core/rfb.js';
import { Terminal } from '/static/vendor/xterm/xterm.mjs';
import { FitAddon } from '/static/vendor/xterm/addon-fit.mjs';
import { api, connectEvents, el, toast, wsUrl } from './common.js';
import { startHostView } from './hostview.js';

const name = document.getElementById('vm').dataset.vm;
const enc = encodeURIComponent(name);
let state = null;
let rfb = null;
let serialSocket = null;
const connecting = { vnc: false, serial: false };

// --- state and power -------------------------------------------------------------------------
// `allowed` is the server's list of actions for this state (allowed_actions): the rules live in the core.
function setState(next, allowed) {
  const was = state;
  if (was === next) return was;
  state = next;
  const badge = document.getElementById('vm-state');
  badge.textContent = next;
  badge.dataset.state = next;
  for (const button of document.querySelectorAll('#power button')) button.disabled = !allowed.includes(button.dataset.action);
  if (next === 'running' || next === 'paused') {
    // QEMU's VNC server exists as soon as the process does: connect the screen and the serial port.
    // (A start passes through "paused" on its way to "running": connect once, whichever comes first.)
    if (!rfb && !connecting.vnc) connectConsole();
    if (!serialSocket && !connecting.serial) connectSerial();
  }
  // Power off is allowed exactly while a QEMU process exists: without one there is no screen or serial port.
  if (!allowed.includes('poweroff')) { rfb?.disconnect(); serialSocket?.close(); }
  return was;
}

async function refresh() {
  const vm = await api('GET', `/api/vms/${enc}`);
  document.getElementById('vm-summary').textContent =
    `${vm.arch} ${vm.machine} · ${vm.vcpus} vCPU · ${vm.memory_mib} MiB · ${vm.accel} · template ${vm.template || '–'}`;
  renderMedia(vm.disks.filter((d) => d.device === 'cdrom'));
  setState(vm.state, vm.allowed_actions);
  return vm;
}

document.getElementById('power').addEventListener('click', async (event) => {
  const action = event.target.dataset?.action;
  if (!action) return;
  try {
    if (action === 'delete') {
      if (!confirm(`Delete ${name} and the disks vmdeck created for it?`)) return;
      await api('DELETE', `/api/vms/${enc}?force=true`);
      location.href = '/';
      return;
    }
    const body = action === 'shutdown' ? { timeout: 60, force: true } : undefined;
    const result = await api('POST', `/api/vms/${enc}/${action}`, body);
    toast(`${name}: ${result.result || action}`);
  } catch (error) {
    toast(`${action}: ${error.message}`, true);
  }
});

// --- the screen --------------------------------------------------------------------------------
const screen = document.getElementById('screen');
const consoleStatus = document.getElementById('console-status');

async function connectConsole() {
  if (rfb) { rfb.disconnect(); rfb = null; }
  connecting.vnc = true;
  try {
    // The ticket is single-use and bound to this user and VM; the proxy maps it to QEMU's socket.
    const ticket = await api('POST', `/api/vms/${enc}/console/ticket`, { kind: 'vnc' });
    const session = new RFB(screen, wsUrl(ticket.path), { wsProtocols: ['binary'] });
    session.scaleViewport = true;
    session.focusOnClick = true;
    session.addEventListener('connect', () => {
      consoleStatus.textContent = 'connected';
      screen.dataset.connected = 'true';
      session.focus();
    });
    session.addEventListener('disconnect', () => {
      consoleStatus.textContent = 'disconnected';
      screen.dataset.connected = 'false';
      if (rfb === session) rfb = null;
    });
    rfb = session;
  } catch (error) {
    consoleStatus.textContent = error.message;
  } finally {
    connecting.vnc = false;
  }
}

document.getElementById('console-connect').addEventListener('click', connectConsole);
document.getElementById('console-cad').addEventListener('click', () => rfb?.sendCtrlAltDel());
document.getElementById('console-full').addEventListener('click', () => screen.requestFullscreen?.());

// --- the serial terminal -------------------------------------------------------------------------
const terminal = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 2000 });
const fit = new FitAddon();
terminal.loadAddon(fit);
terminal.open(document.getElementById('terminal'));
fit.fit();
window.addEventListener('resize', () => fit.fit());
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
    socket.onopen = () => { serialStatus.textContent = 'connected'; document.getElementById('terminal').dataset.connected = 'true'; };
    socket.onmessage = (event) => terminal.write(new Uint8Array(event.data));
    socket.onclose = () => {
      serialStatus.textContent = 'disconnected';
      document.getElementById('terminal').dataset.connected = 'false';
      if (serialSocket === socket) serialSocket = null;
    };
    serialSocket = socket;
  } catch (error) {
    serialStatus.textContent = error.message;
  } finally {
    connecting.serial = false;
  }
}
document.getElementById('serial-connect').addEventListener('click', connectSerial);

// --- CD/DVD media ----------------------------------------------------------------------------------
let drives = [];
function renderMedia(cdroms) {
  drives = cdroms;
  const body = document.querySelector('#media-table tbody');
  body.replaceChildren(...(cdroms.length ? cdroms.map((d) => el('tr', { dataset: { drive: d.target } },
    el('td', {}, d.target), el('td', {}, d.bus),
    el('td', { class: 'disc' }, d.source ? d.source.split('/').pop() : '(empty)'),
    el('td', {}, el('button', { class: 'eject', disabled: !d.source, onclick: () => eject(d.target) }, 'Eject'))))
    : [el('tr', {}, el('td', { colspan: 4, class: 'dim' }, 'No CD/DVD drive.'))]));
}

async function eject(drive) {
  try {
    const change = await api('DELETE', `/api/vms/${enc}/media?drive=${encodeURIComponent(drive)}`);
    toast(change.message);
  } catch (error) { toast(error.message, true); }
  refresh();
}

async function loadIsos() {
  const isos = await api('GET', '/api/isos');
  document.getElementById('media-iso').replaceChildren(...isos.map((iso) => el('option', { value: iso.name }, iso.name)));
}

document.getElementById('media-insert').addEventListener('click', async () => {
  const iso = document.getElementById('media-iso').value;
  if (!iso) { toast('The ISO library is empty: upload one on the Host page.', true); return; }
  try {
    const change = await api('POST', `/api/vms/${enc}/media`, { iso, drive: drives[0]?.target ?? null });
    toast(change.message);
  } catch (error) { toast(error.message, true); }
  refresh();
  loadDevices();
});

// --- devices -----------------------------------------------------------------------------------------
async function loadDevices() {
  const rows = await api('GET', `/api/vms/${enc}/devices`);
  document.querySelector('#device-table tbody').replaceChildren(...rows.map((row) => {
    let remove = '';
    if (row.kind === 'disk') remove = el('button', { class: 'danger', onclick: () => removeDevice(`disks/${row.key}?delete_volume=true`) }, 'Remove');
    if (row.kind === 'nic') remove = el('button', { class: 'danger', onclick: () => removeDevice(`nics/${row.key}`) }, 'Remove');
    return el('tr', { dataset: { kind: row.kind, key: row.key } }, el('td', {}, row.kind), el('td', {}, row.key),
      el('td', {}, row.bus), el('td', {}, row.source || ''), el('td', {}, row.status), el('td', {}, remove));
  }));
}

async function removeDevice(path) {
  try { toast((await api('DELETE', `/api/vms/${enc}/${path}`)).message); } catch (error) { toast(error.message, true); }
  loadDevices();
}

document.getElementById('disk-add').addEventListener('click', async () => {
  const body = { size_gib: Number(document.getElementById('disk-size').value), bus: document.getElementById('disk-bus').value };
  try { toast((await api('POST', `/api/vms/${enc}/disks`, body)).message); } catch (error) { toast(error.message, true); }
  loadDevices();
});
document.getElementById('nic-add').addEventListener('click', async () => {
  const body = { model: document.getElementById('nic-model').value, network: 'user' };
  try { toast((await api('POST', `/api/vms/${enc}/nics`, body)).message); } catch (error) { toast(error.message, true); }
  loadDevices();
});

// --- live updates ---------------------------------------------------------------------------------
connectEvents((message) => {
  if (message.type === 'state' && message.vm === name && message.state) {
    setState(message.state, message.allowed_actions);
    loadDevices().catch(() => {});
  } else if (message.type === 'inventory') {
    refresh().catch(() => { document.getElementById('vm-state').textContent = 'deleted'; });
  }
});

refresh().then(() => loadDevices()).catch((error) => toast(error.message, true));
loadIsos().catch(() => {});
startHostView(name, () => state);
