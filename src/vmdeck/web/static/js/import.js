// Import page: the package uploaded (with progress) to POST /api/import, planned first, then imported.
import { ApiError, api, csrfToken, el, formatBytes, noteForNextPage } from './common.js';

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
      status.textContent = event.loaded < event.total
        ? `uploading ${formatBytes(event.loaded)} of ${formatBytes(event.total)}`
        : 'uploaded: reading the package and converting its disks…';
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body));
    };
    request.onerror = () => reject(new ApiError(0, { detail: 'the upload was interrupted' }));
    request.send(file);
  });
}

function showPlan(plan) {
  const rows = [
    ['Name', plan.name], ['Template', `${plan.template} (${plan.machine})${plan.os ? ` for ${plan.os}` : ''}`],
    ['CPUs', plan.vcpus], ['Memory', `${plan.memory_mib} MiB`],
    ['Firmware', `${plan.firmware}${plan.secure_boot ? ' with Secure Boot' : ''}${plan.tpm ? ', TPM 2.0' : ''}`],
    ...plan.disks.map((d) => [`Disk ${d.target}`, `${d.file} (${d.format}), ${formatBytes(d.capacity_bytes)} on ${d.bus}` +
      (d.controller ? ` (was ${d.controller})` : '')]),
    ...plan.nics.map((n, i) => [`NIC ${i + 1}`, `${n.model} on ${n.network}`]),
  ];
  document.getElementById('plan-rows').replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))));
  const notes = plan.not_honoured.length ? plan.not_honoured : ['nothing: every part of the source is honoured'];
  document.getElementById('plan-notes').replaceChildren(...notes.map((note) => el('li', {}, note)));
  document.getElementById('plan').hidden = false;
}

function showError(error) {
  const slot = form.querySelector(`.field-error[data-for="${error.field}"]`) || document.getElementById('form-error');
  slot.textContent = error.message;
  slot.hidden = false;
}

async function send(planOnly) {
  for (const p of form.querySelectorAll('.field-error, #form-error')) p.hidden = true;
  const file = fileInput.files[0];
  if (!file) { showError(new ApiError(422, { detail: 'choose a file to import', field: 'filename' })); return; }
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
      status.textContent = 'planned: nothing was created';
    } else {
      noteForNextPage(`${answer.name} imported from ${file.name}`, { record: false });  // the server's task lists it
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
  document.getElementById('f-template').append(...templates.map((t) => el('option', { value: t.name }, t.name)));
  const projects = (await api('GET', '/api/projects')).filter((p) => p.role === 'manager' || p.role === 'admin');
  document.getElementById('f-project').replaceChildren(...projects.map((p) => el('option', { value: p.name }, p.name)));
}
init();
