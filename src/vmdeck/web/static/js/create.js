// Create form: templates and ISOs from the API; errors shown next to the field the server names.
import { api, el, noteForNextPage } from './common.js';
import { clearErrors as clearFieldErrors, serverMessage, showErrors } from './forms.js';
import { formatNumber, t, tNodes } from './i18n.js';

const form = document.getElementById('create-form');
const templateSelect = document.getElementById('f-template');
const info = document.getElementById('template-info');
const imageSelect = document.getElementById('f-image');
const cloudInit = document.getElementById('cloud-init');
let templates = [];
let images = [];

// A VM from an image is a linked clone configured by cloud-init: its fields only mean something then.
// The image's own template (the server names it: debian-12, or debian-12-arm64 for an aarch64 image)
// replaces tiny, or a template of another architecture, which could not run the image.
function templateImage() {
  const chosen = templates.find((x) => x.name === templateSelect.value);
  return chosen?.disks?.find((d) => d.image)?.image || null;
}

// cloud-init's fields show whenever a seed will be made: an image chosen, or the template's own disk image.
function showCloudInit() {
  cloudInit.hidden = imageSelect.value === '' && !templateImage();
}

function showImage() {
  showCloudInit();
  const image = images.find((i) => i.name === imageSelect.value);
  const current = templates.find((x) => x.name === templateSelect.value);
  if (image && (templateSelect.value === 'tiny' || current?.arch !== image.arch) &&
      templates.some((x) => x.name === image.template)) {
    templateSelect.value = image.template;
    showTemplate();
  }
}

function showTemplate() {
  const chosen = templates.find((x) => x.name === templateSelect.value);
  if (!chosen) return;
  const disk = chosen.disks?.[0]?.size_gib;
  // The template's description is the server's (English); the shape around it is in the page's words.
  const shape = tNodes(disk ? 'create.template.shape_disk' : 'create.template.shape', {
    arch: chosen.arch, machine: chosen.machine, vcpus: chosen.vcpus, memory: chosen.memory_mib, disk: formatNumber(disk, 1) });
  info.replaceChildren(el('span', { class: 'val', lang: 'en' }, chosen.description || ''), ' — ', ...shape);
  form.vcpus.placeholder = chosen.vcpus;
  form.memory_mib.placeholder = chosen.memory_mib;
  form.disk_gib.placeholder = disk ?? t('common.none');
  // A template that clones an image (debian-12) preselects it: the form shows what will be made.
  const image = templateImage();
  if (image && images.some((i) => i.name === image && i.arch === chosen.arch)) imageSelect.value = image;
  const none = imageSelect.querySelector('option[value=""]');
  if (none) none.textContent = image ? t('create.image.templates', { image }) : t('create.image.none');
  showCloudInit();
}

async function init() {
  templates = await api('GET', '/api/templates');
  templateSelect.replaceChildren(...templates.map((x) => el('option', { value: x.name, class: 'val' }, x.name)));
  templateSelect.value = templates.some((x) => x.name === 'tiny') ? 'tiny' : templates[0]?.name;
  showTemplate();
  images = await api('GET', '/api/images');
  imageSelect.append(...images.map((i) => el('option', { value: i.name, class: 'val' },
    `${i.name} (${i.os} ${i.os_version || ''} ${i.arch}, ${(i.virtual_size / 2 ** 30).toFixed(1)} GiB)`)));
  showTemplate();
  // Projects where the user may create (manager; administrators: any), with their quota use shown on the list page.
  const projects = (await api('GET', '/api/projects')).filter((p) => p.role === 'manager' || p.role === 'admin');
  document.getElementById('f-project').replaceChildren(...projects.map((p) => el('option', { value: p.name, class: 'val' }, p.name)));
  const isos = await api('GET', '/api/isos');
  document.getElementById('f-cdrom').append(...isos.map((iso) => el('option', { value: iso.name, class: 'val' }, iso.name)));
}

function clearErrors() {
  clearFieldErrors(form);
}

// What the browser can tell before asking the server, all at once, each under its field.
function localErrors() {
  const errors = {};
  const name = form.name.value.trim();
  if (!name) errors.name = t('create.error.name');
  else if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/.test(name)) errors.name = t('create.error.name_invalid');
  for (const [field, min, whole] of [['vcpus', 1, true], ['memory_mib', 16, true], ['disk_gib', 0, false]]) {
    const raw = form[field].value;
    if (raw === '') continue;
    const value = Number(raw);
    if (!(value >= min)) errors[field] = t('common.at_least', { min });
    else if (whole && !Number.isInteger(value)) errors[field] = t('common.whole');
  }
  return errors;
}

function number(input) {
  return input.value === '' ? null : Number(input.value);
}

templateSelect.addEventListener('change', showTemplate);
imageSelect.addEventListener('change', showImage);
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  if (showErrors(form, localErrors())) return;
  const submit = document.getElementById('create-submit');
  submit.disabled = true;
  submit.textContent = t('create.creating');
  // A create from an image takes a minute on a loaded host: the elapsed time shows it is not stuck.
  const started = Date.now();
  const ticker = setInterval(() => { submit.textContent = t('create.creating_for', { s: Math.round((Date.now() - started) / 1000) }); }, 1000);
  const body = {
    name: form.name.value.trim(), template: templateSelect.value, vcpus: number(form.vcpus),
    memory_mib: number(form.memory_mib), disk_gib: number(form.disk_gib),
    cdrom: form.cdrom.value || null, start: form.start.checked, project: form.project.value || null,
  };
  if (!cloudInit.hidden) {
    Object.assign(body, {
      image: imageSelect.value || null, user: form.user.value.trim() || null, hostname: form.hostname.value.trim() || null,
      password: form.password.value || null,
      ssh_keys: form.ssh_key.value.trim() ? [form.ssh_key.value.trim()] : [],
      user_data: form.user_data.value.trim() ? form.user_data.value : null,
    });
  }
  try {
    const vm = await api('POST', '/api/vms', body);
    noteForNextPage(t(body.start ? 'create.done_started' : 'create.done', { vm: vm.name }), { record: false });  // the server's task lists it
    location.href = `/vms/${encodeURIComponent(vm.name)}`;
  } catch (error) {
    // "vcpus", a nested "disks.0.size_gib" or "ssh_keys[0]": show it under the closest field of the form.
    const field = (error.field || '').split(/[.[]/)[0].replace(/^(disks|size_gib)$/, 'disk_gib').replace(/^cdroms$/, 'cdrom');
    showErrors(form, { [field || '_form']: serverMessage(error) });
  } finally {
    clearInterval(ticker);
    submit.disabled = false;
    submit.textContent = t('create.submit');
  }
});
init();
