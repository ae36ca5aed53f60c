// Import page: the package uploaded (with progress) to POST /api/import, planned first, then imported.
import { ApiError, api, csrfToken, el, formatBytes, noteForNextPage } from './common.js';
import { t, tNodes, val } from './i18n.js';

const form = document.getElementById('import-form');
const fileInput = document.getElementById('f-file');
const planButton = document.getElementById('plan-button');
const importButton = document.getElementById('import-button');
const bar = document.getElementById('upload-progress');
const status = document.getElementById('upload-status');
let planned = null; // the options the shown plan was made with: importing sends the same

function options() {
  const file = fileInput.files[0];
  const params = new URLSearchParams({ filename: file ? file.name : '' });
  for (const key of ['name', 'project', 'template', 'firmware', 'disk_bus', 'nic_model']) {
    const value = form[key].value.trim();
    if (value) params.set(key, value);
  }
  return params;
}

// XMLHttpRequest, not fetch(): only it reports the upload's progress.
function upload(params, file) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', `/api/import?${params}`);
    request.setRequestHeader('X-CSRF-Token', csrfToken);
    request.setRequestHeader('Content-Type', 'application/octet-stream');
    request.setRequestHeader('Accept', 'application/json');
    request.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      bar.value = Math.round((event.loaded / event.total) * 100);
      status.replaceChildren(...(event.loaded < event.total
        ? tNodes('import.uploading', { done: formatBytes(event.loaded), total: formatBytes(event.total) })
        : [t('import.converting')]));
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body));
    };
    request.onerror = () => reject(new ApiError(0, { detail: t('import.interrupted') }));
    request.send(file);
  });
}

function showPlan(plan) {
  const rows = [
    [t('common.name'), [val(plan.name)]],
    [t('common.template'), tNodes(plan.os ? 'import.plan.template_os' : 'import.plan.template',
      { template: plan.template, machine: plan.machine, os: plan.os })],
    [t('import.plan.cpus'), [val(plan.vcpus)]], [t('common.memory'), [val(`${plan.memory_mib} MiB`)]],
    [t('import.firmware'), [val(plan.firmware), ...(plan.secure_boot ? [' ', t('import.plan.secure_boot')] : []),
      ...(plan.tpm ? [', ', val('TPM 2.0')] : [])]],
    ...plan.disks.map((d) => [t('import.plan.disk', { target: d.target }),
      [...tNodes('import.plan.disk_value', { file: d.file, format: d.format, size: formatBytes(d.capacity_bytes), bus: d.bus }),
        ...(d.controller ? [' ', ...tNodes('import.plan.was', { controller: d.controller })] : [])]]),
    ...plan.nics.map((n, i) => [t('import.plan.nic', { n: i + 1 }), tNodes('import.plan.nic_value', { model: n.model, network: n.network })]),
  ];
  document.getElementById('plan-rows').replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))));
  // What the source asks for and vmdeck cannot honour: the server's own sentences.
  document.getElementById('plan-notes').replaceChildren(...(plan.not_honoured.length
    ? plan.not_honoured.map((note) => el('li', {}, val(note))) : [el('li', {}, t('import.plan.all_honoured'))]));
  document.getElementById('plan').hidden = false;
}

// The page's own message for the file's field.
function slot(message) {
  const box = form.querySelector('.field-error[data-for="filename"]');
  box.textContent = message;
  box.hidden = false;
}

function showError(error) {
  const slot = form.querySelector(`.field-error[data-for="${error.field}"]`) || document.getElementById('form-error');
  slot.replaceChildren(val(error.message));
  slot.hidden = false;
}

async function send(planOnly) {
  for (const p of form.querySelectorAll('.field-error, #form-error')) p.hidden = true;
  const file = fileInput.files[0];
  if (!file) { slot(t('import.choose_file')); return; }
  const params = options();
  if (planOnly) params.set('plan', 'true');
  planButton.disabled = importButton.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  try {
    const answer = await upload(params, file);
    if (planOnly) {
      showPlan(answer);
      planned = options().toString();
      status.textContent = t('import.planned');
    } else {
      noteForNextPage(t('import.done', { vm: answer.name, file: file.name }), { record: false });  // the server's task lists it
      location.href = `/vms/${encodeURIComponent(answer.name)}`;
    }
  } catch (error) {
    showError(error);
    status.textContent = '';
  } finally {
    bar.hidden = true;
    planButton.disabled = false;
    importButton.disabled = planned === null || planned !== options().toString();
  }
}

// A plan is for the options it was made with: changing one asks for a new plan before importing.
form.addEventListener('change', () => { importButton.disabled = planned === null || planned !== options().toString(); });
planButton.addEventListener('click', () => send(true));
form.addEventListener('submit', (event) => { event.preventDefault(); send(false); });

async function init() {
  const templates = await api('GET', '/api/templates');
  document.getElementById('f-template').append(...templates.map((x) => el('option', { value: x.name, class: 'val' }, x.name)));
  const projects = (await api('GET', '/api/projects')).filter((p) => p.role === 'manager' || p.role === 'admin');
  document.getElementById('f-project').replaceChildren(...projects.map((p) => el('option', { value: p.name, class: 'val' }, p.name)));
}
init();
