// Projects (administrators): use against each quota, create, change quotas, delete — through
// GET/POST /api/projects and PATCH/DELETE /api/projects/P.
import { api, confirmDialog, el, toast, track } from './common.js';
import { clearErrors, serverError, showErrors } from './forms.js';

const QUOTAS = ['instances', 'vcpus', 'memory_mib', 'disk_gib', 'iso_gib'];
const form = document.getElementById('project-form');
let editing = null;  // the project whose quotas the form changes; null: a new project
let details = [];

function used(quota) {
  if (!quota) return '–';
  const value = Number.isInteger(quota.used) ? quota.used : Number(quota.used).toFixed(1);
  return quota.limit == null ? `${value} / no limit` : `${value} / ${quota.limit}`;
}

async function load() {
  const names = await api('GET', '/api/projects');
  details = await Promise.all(names.map((p) => api('GET', `/api/projects/${encodeURIComponent(p.name)}`)
    .catch((error) => ({ name: p.name, error: error.message }))));
  document.querySelector('#project-table tbody').replaceChildren(...details.map((p) => el('tr', { dataset: { project: p.name } },
    el('td', {}, p.name),
    ...QUOTAS.map((q) => el('td', { class: `quota-${q}`, dataset: { full: p.quota?.[q]?.limit != null && p.quota[q].used >= p.quota[q].limit } },
      p.error ? '' : used(p.quota?.[q]))),
    el('td', {}, p.error ? p.error : (Object.entries(p.members || {}).map(([u, r]) => `${u} (${r})`).join(', ') || '–')),
    el('td', {}, el('button', { type: 'button', class: 'edit', onclick: () => edit(p) }, 'Quotas'), ' ',
      el('button', { type: 'button', class: 'danger delete', onclick: () => remove(p) }, 'Delete')))));
}

function edit(project) {
  editing = project.name;
  form.reset();
  clearErrors(form);
  form.name.value = project.name;
  form.name.disabled = true;
  for (const q of QUOTAS) form[q].value = project.quota?.[q]?.limit ?? '';
  document.getElementById('project-form-title').textContent = `Quotas of ${project.name}`;
  document.getElementById('p-save').textContent = 'Save quotas';
  document.getElementById('p-cancel').hidden = false;
  form.scrollIntoView({ block: 'nearest' });
  form[QUOTAS[0]].focus();
}

function stopEditing() {
  editing = null;
  form.reset();
  form.name.disabled = false;
  document.getElementById('project-form-title').textContent = 'New project';
  document.getElementById('p-save').textContent = 'Create project';
  document.getElementById('p-cancel').hidden = true;
}
document.getElementById('p-cancel').addEventListener('click', () => { clearErrors(form); stopEditing(); });

async function remove(project) {
  const vms = project.vms?.length || 0;
  const ok = await confirmDialog({ title: `Delete project ${project.name}?`, confirm: 'Delete',
    message: vms ? `${project.name} still has ${vms} VM(s): vmdeck refuses to delete it until they are deleted or moved.`
      : `${project.name} and its memberships are deleted; its members keep their accounts.` });
  if (!ok) return;
  await track(`Delete project ${project.name}`, () => api('DELETE', `/api/projects/${encodeURIComponent(project.name)}`),
    () => `Project ${project.name} deleted`).catch(() => {});
  load();
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(form);
  const errors = {};
  const name = form.name.value.trim();
  if (!editing && !name) errors.name = 'Name the project.';
  if (!editing && details.some((p) => p.name === name)) errors.name = `There is already a project named ${name}.`;
  const quota = {};
  for (const q of QUOTAS) {
    const raw = form[q].value;
    if (raw === '') { if (editing) quota[q] = null; continue; }
    const value = Number(raw);
    if (!(value >= 0)) errors[q] = 'A number, 0 or more (empty: no limit).';
    else if (!['disk_gib', 'iso_gib'].includes(q) && !Number.isInteger(value)) errors[q] = 'A whole number.';
    else quota[q] = value;
  }
  if (showErrors(form, errors)) return;
  try {
    if (editing) {
      await track(`Set the quotas of ${editing}`, () => api('PATCH', `/api/projects/${encodeURIComponent(editing)}`, quota),
        () => `${editing}: quotas saved`);
      stopEditing();
    } else {
      await track(`Create project ${name}`, () => api('POST', '/api/projects', { name, quota }), () => `Project ${name} created`);
      form.reset();
    }
    load();
  } catch (error) {
    showErrors(form, serverError(error, (field) => field.split('.').pop()));
  }
});

load().catch((error) => toast(error.message, true));
