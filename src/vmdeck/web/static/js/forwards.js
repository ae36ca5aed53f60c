// VM page, NIC tab: the VM's port forwards (host address:port -> guest port) with add and remove.
// Self-contained: it needs the #forwards block (templates/forwards_panel.html), common.js and i18n.js;
// every word comes from the forwards catalog (web/i18n/LANG/forwards.json).
import { api, el, toast } from './common.js';
import { loadMessages, t } from './i18n.js';

const panel = document.getElementById('forwards');
const enc = encodeURIComponent(panel.dataset.vm);
// The last action's outcome stays on the panel (a notice leaves after a few seconds).
const outcome = document.getElementById('forward-result');

function say(message, bad = false) {
  toast(message, bad);
  outcome.textContent = message;
  outcome.className = bad ? 'bad' : 'ok';
}

async function run(call, done) {
  try {
    const result = await call();
    say(done(result));
  } catch (error) {
    say(error.message, true);
  }
  await load();
}

function row(f) {
  const label = `${f.address}:${f.host_port}/${f.proto}`;
  return el('tr', { dataset: { forward: label } },
    el('td', { class: 'val' }, f.address), el('td', { class: 'val' }, String(f.host_port)), el('td', { class: 'val' }, f.proto.toUpperCase()),
    el('td', { class: 'val' }, `${f.guest_ip}:${f.guest_port}`), el('td', { class: 'val' }, f.network),
    el('td', { 'data-need': 'operator' },
      el('button', { class: 'danger', 'data-forward-action': 'remove', onclick: () => run(
        () => api('DELETE', `/api/vms/${enc}/forwards/${f.id}`), () => t('forwards.removed', { forward: label })) },
      t('forwards.remove'))));
}

async function load() {
  const body = document.querySelector('#forward-list tbody');
  try {
    const rows = await api('GET', `/api/vms/${enc}/forwards`);
    body.replaceChildren(...(rows.length ? rows.map(row)
      : [el('tr', {}, el('td', { colspan: '6', class: 'dim' }, t('forwards.none')))]));
  } catch (error) {
    body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'bad val' }, error.message)));
  }
}

document.getElementById('forward-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const hostPort = Number(document.getElementById('forward-host-port').value);
  const guestPort = Number(document.getElementById('forward-guest-port').value) || null;
  if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65535) {
    say(t('forwards.bad_port'), true);
    return;
  }
  const body = { host_port: hostPort, guest_port: guestPort, proto: document.getElementById('forward-proto').value,
    address: document.getElementById('forward-address').value.trim() || '127.0.0.1' };
  run(() => api('POST', `/api/vms/${enc}/forwards`, body), (f) => t('forwards.added', {
    forward: `${f.address}:${f.host_port}/${f.proto}`, guest: `${f.guest_ip}:${f.guest_port}` }));
});

await loadMessages();
await load();
