// Projects (administrators): use against each quota, create, change quotas, delete — through
// GET/POST /api/projects and PATCH/DELETE /api/projects/P.
import { api, confirmDialog, el, toast, track } from './common.js';
import { clearErrors, serverError, showErrors } from './forms.js';
import { formatNumber, t, tNodes, val } from './i18n.js';

const QUOTAS = ['instances', 'vcpus', 'memory_mib', 'disk_gib', 'iso_gib'];
const form = document.getElementById('project-form');
let editing = null;  // the project whose quotas the form changes; null: a new project
let details = [];

function used(quota) {
  if (!quota) return '–';
  const value = formatNumber(quota.used, 1);
  return quota.limit == null ? tNodes('projects.used_unlimited', { used: value }) : [val(`${value} / ${formatNumber(quota.limit, 2)}`)];
}

// "ann (manager), bob (viewer)": the names as values, the roles in words.
function members(project) {
  const entries = Object.entries(project.members || {});
  return entries.length ? entries.flatMap(([u, r], i) => [i ? ', ' : '', val(u), ` (${t(`role.${r}`)})`]) : ['–'];
}

async function load() {
  const names = await api('GET', '/api/projects');
  details = await Promise.all(names.map((p) => api('GET', `/api/projects/${encodeURIComponent(p.name)}`)
    .catch((error) => ({ name: p.name, error: error.message }))));
  document.querySelector('#project-table tbody').replaceChildren(...details.map((p) => el('tr', { dataset: { project: p.name } },
    el('td', { class: 'val' }, p.name),
    ...QUOTAS.map((q) => el('td', { class: `quota-${q}`, dataset: { full: p.quota?.[q]?.limit != null && p.quota[q].used >= p.quota[q].limit } },
      p.error ? '' : used(p.quota?.[q]))),
    el('td', {}, p.error ? val(p.error) : members(p)),
    el('td', {}, el('button', { type: 'button', class: 'edit', onclick: () => edit(p) }, t('projects.quotas.button')), ' ',
      el('button', { type: 'button', class: 'danger delete', onclick: () => remove(p) }, t('power.delete'))))));
}

function edit(project) {
  editing = project.name;
  form.reset();
  clearErrors(form);
  form.name.value = project.name;
  form.name.disabled = true;
  for (const q of QUOTAS) form[q].value = project.quota?.[q]?.limit ?? '';
  document.getElementById('project-form-title').replaceChildren(...tNodes('projects.quotas_of', { project: project.name }));
  document.getElementById('p-save').textContent = t('projects.save_quotas');
  document.getElementById('p-cancel').hidden = false;
  form.scrollIntoView({ block: 'nearest' });
  form[QUOTAS[0]].focus();
}

function stopEditing() {
  editing = null;
  form.reset();
  form.name.disabled = false;
  document.getElementById('project-form-title').textContent = t('projects.new');
  document.getElementById('p-save').textContent = t('projects.create');
  document.getElementById('p-cancel').hidden = true;
}
document.getElementById('p-cancel').addEventListener('click', () => { clearErrors(form); stopEditing(); });

async function remove(project) {
  const vms = project.vms?.length || 0;
  const ok = await confirmDialog({ title: t('projects.delete.title', { project: project.name }), confirm: t('power.delete'),
    message: vms ? tNodes('projects.delete.has_vms', { project: project.name, n: vms })
      : tNodes('projects.delete.message', { project: project.name }) });
  if (!ok) return;
  await track(t('projects.delete.task', { project: project.name }), () => api('DELETE', `/api/projects/${encodeURIComponent(project.name)}`),
    () => t('projects.deleted', { project: project.name })).catch(() => {});
  load();
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(form);
  const errors = {};
  const name = form.name.value.trim();
  if (!editing && !name) errors.name = t('projects.error.name');
  if (!editing && details.some((p) => p.name === name)) errors.name = tNodes('projects.error.exists', { project: name });
  const quota = {};
  for (const q of QUOTAS) {
    const raw = form[q].value;
    if (raw === '') { if (editing) quota[q] = null; continue; }
    const value = Number(raw);
    if (!(value >= 0)) errors[q] = t('projects.error.number');
    else if (!['disk_gib', 'iso_gib'].includes(q) && !Number.isInteger(value)) errors[q] = t('common.whole');
    else quota[q] = value;
  }
  if (showErrors(form, errors)) return;
  try {
    if (editing) {
      await track(t('projects.quota.task', { project: editing }), () => api('PATCH', `/api/projects/${encodeURIComponent(editing)}`, quota),
        () => t('projects.quota.done', { project: editing }));
      stopEditing();
    } else {
      await track(t('projects.create.task', { project: name }), () => api('POST', '/api/projects', { name, quota }),
        () => t('projects.created', { project: name }));
      form.reset();
    }
    load();
  } catch (error) {
    showErrors(form, serverError(error, (field) => field.split('.').pop()));
  }
});

load().catch((error) => toast(error.message, true));
