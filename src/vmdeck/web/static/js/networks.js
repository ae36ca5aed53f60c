// The Networks page (networks.html): the virtual networks the caller may see, with mode, subnet, DHCP range,
// project and the VMs on each; create (managers of a project, administrators) and delete (refused while a
// VM uses the network: the page says which ones). Through GET/POST/DELETE /api/networks.
import { api, confirmDialog, el, toast, track } from './common.js';
import { loadMessages, t, val } from './i18n.js';

const admin = document.getElementById('networks').dataset.admin === 'true';

function modeLabel(mode) {
  const key = `networks.mode.${mode}`;
  const label = t(key);
  return label === key ? mode : label;
}

function projectCell(network) {
  if (network.project) return val(network.project);
  return network.allowed ? t('networks.shared') : t('networks.no_project');
}

function render(networks) {
  document.querySelector('#network-table tbody').replaceChildren(...(networks.length ? networks.map((network) => el('tr', {
    dataset: { network: network.name } },
  el('td', { class: 'name val' }, network.name),
  el('td', {}, modeLabel(network.mode)),
  el('td', { class: 'val' }, network.subnet || '–'),
  el('td', { class: 'val' }, network.dhcp ? `${network.dhcp[0]} – ${network.dhcp[1]}` : '–'),
  el('td', {}, projectCell(network)),
  el('td', { class: 'vms wrap' }, network.vms.length ? network.vms.map((vm, i) => [i ? ', ' : '', el('a', { class: 'val', href: `/vms/${encodeURIComponent(vm)}` }, vm)]) : t('networks.no_vms')),
  el('td', {}, network.can_manage
    ? el('button', { type: 'button', class: 'danger delete', onclick: () => remove(network) }, t('networks.delete'))
    : '')))
    : [el('tr', {}, el('td', { colspan: 7, class: 'dim' }, t('networks.none')))]));
}

async function load() {
  const networks = await api('GET', '/api/networks');
  render(networks);
  document.getElementById('networks').dataset.loaded = 'true';
}

async function remove(network) {
  if (network.vms.length) {
    // libvirt would refuse too; say it before asking.
    toast(t('networks.in_use', { network: network.name, vms: network.vms.join(', ') }), true);
    return;
  }
  const ok = await confirmDialog({
    title: t('networks.delete_title', { network: network.name }),
    message: t('networks.delete_message', { network: network.name, subnet: network.subnet || '–' }),
    confirm: t('networks.delete'),
  });
  if (!ok) return;
  await track(t('networks.deleting', { network: network.name }),
    () => api('DELETE', `/api/networks/${encodeURIComponent(network.name)}`),
    () => t('networks.deleted', { network: network.name })).catch(() => {});
  load();
}

const form = document.getElementById('network-form');

async function loadProjects() {
  const projects = (await api('GET', '/api/projects')).filter((p) => admin || p.role === 'manager');
  const select = document.getElementById('net-project');
  select.replaceChildren(...(admin ? [el('option', { value: '' }, t('networks.no_project'))] : []),
    ...projects.map((p) => el('option', { value: p.name, class: 'val' }, p.name)));
  if (!admin && projects.length) select.value = projects[0].name;
}

form?.addEventListener('submit', async (event) => {
  event.preventDefault();
  for (const slot of form.querySelectorAll('.field-error')) { slot.hidden = true; slot.textContent = ''; }
  const body = {
    name: form.name.value.trim(), mode: form.mode.value, subnet: form.subnet.value.trim(),
    dhcp_range: form.dhcp_range.value.trim() || null, project: form.project.value || null,
  };
  const say = (field, message) => {
    const slot = form.querySelector(`.field-error[data-for="${field}"]`) || document.getElementById('net-error');
    slot.textContent = message;
    slot.hidden = false;
  };
  let missing = false;
  if (!body.name) { say('name', t('networks.need_name')); missing = true; }
  if (!body.subnet) { say('subnet', t('networks.need_subnet')); missing = true; }
  if (missing) return;
  try {
    await track(t('networks.creating', { network: body.name }), () => api('POST', '/api/networks', body),
      (made) => t('networks.created', { network: made.name, subnet: made.subnet, bridge: made.bridge || '–' }));
    form.reset();
    await loadProjects();
  } catch (error) {
    say(error.field || '', error.message);
  }
  load();
});

await loadMessages();
load().catch((error) => toast(error.message, true));
if (form) loadProjects().catch((error) => toast(error.message, true));
