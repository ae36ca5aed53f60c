// The Learn tour: one card per step (vmdeck.learn.steps), its explanation from the language's catalog,
// a Run button for the roles that may act, and the before/after numbers the server measured.
// Every word comes from the catalog (i18n.js); values (numbers, names, paths) are in .val elements.
import { api, el, toast } from './common.js';
import { loadMessages, t, tNodes } from './i18n.js';

const root = document.getElementById('learn');
const picker = document.getElementById('learn-vm');
const status = document.getElementById('learn-status');
const list = document.getElementById('learn-steps');
const createButton = document.getElementById('learn-create');

function value(v) {
  if (v === true) return el('span', {}, t('value.yes'));
  if (v === false) return el('span', {}, t('value.no'));
  if (v === null || v === undefined || v === '') return el('span', {}, t('value.none'));
  if (typeof v === 'number') return el('span', { class: 'val' }, Number.isInteger(v) ? String(v) : v.toFixed(1));
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === 'object') return table(v);
    return el('code', { class: 'val' }, v.join(' '));
  }
  if (typeof v === 'object') {
    return el('span', { class: 'val' }, Object.entries(v).map(([k, n]) => `${k}: ${n}`).join(', ') || '–');
  }
  return el('span', { class: 'val' }, String(v));
}

function table(rows) {
  const keys = Object.keys(rows[0]).filter((k) => k !== 'role');
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('thead', {}, el('tr', {}, keys.map((k) => el('th', {}, t(`field.${k}`))))),
    el('tbody', {}, rows.map((row) => el('tr', {}, keys.map((k) => el('td', {}, value(row[k]))))))));
}

function facts(data) {
  const dl = el('dl', { class: 'facts' });
  for (const [key, v] of Object.entries(data)) {
    if (key === 'cmdline') {
      dl.append(el('dt', {}, t('field.cmdline')),
        el('dd', {}, el('pre', { class: 'val cmdline' }, cmdlineText(v))));
      continue;
    }
    dl.append(el('dt', {}, t(`field.${key}`)), el('dd', {}, value(v)));
  }
  return dl;
}

// QEMU's command line, one option per line (an option and its value on the same line).
function cmdlineText(argv) {
  const lines = [];
  for (const arg of argv) {
    if (arg.startsWith('-') || !lines.length) lines.push(arg);
    else lines[lines.length - 1] += ` ${arg}`;
  }
  return lines.join('\n');
}

function showResult(card, step, result) {
  const box = card.querySelector('.learn-result');
  box.replaceChildren();
  if (result.skipped) {
    box.append(el('p', { class: 'notice' }, t(`learn.skip.${result.skipped}`)));
    if (Object.keys(result.before).length) box.append(facts(result.before));
    return;
  }
  const hasAfter = Object.keys(result.after).length > 0;
  const columns = el('div', { class: 'learn-columns' },
    el('div', {}, el('h4', {}, t('learn.before')), facts(result.before)));
  if (hasAfter) columns.append(el('div', {}, el('h4', {}, t('learn.after')), facts(result.after)));
  box.append(columns);
  if (step.acts) {
    box.append(el('p', { class: result.happened ? 'ok' : 'notice' },
      t(result.happened ? 'learn.happened' : 'learn.not_happened')));
    box.append(el('p', { class: 'dim' }, ...tNodes('learn.cleaned', { seconds: result.duration_s })));
  }
  box.append(el('p', {}, el('a', { href: `/vms/${encodeURIComponent(result.vm)}#hostview` }, t('learn.link'))));
  card.dataset.done = result.happened ? 'yes' : 'no';
}

async function run(card, step) {
  const vm = picker.value;
  if (!vm) return;
  const button = card.querySelector('button.run');
  button.disabled = true;
  button.textContent = t('learn.running');
  card.dataset.state = 'running';
  try {
    const result = await api('POST', `/api/vms/${encodeURIComponent(vm)}/learn/${step.id}`);
    showResult(card, step, result);
    card.dataset.state = 'done';
  } catch (err) {
    card.querySelector('.learn-result').replaceChildren(
      el('p', { class: 'error' }, ...tNodes('learn.error', { detail: err.message })));
    card.dataset.state = 'failed';
  } finally {
    button.disabled = false;
    button.textContent = t('learn.again');
  }
}

function stepCard(step) {
  const card = el('li', { class: 'card learn-step', id: `step-${step.id}`, dataset: { step: step.id } },
    el('h2', {}, t(`step.${step.id}.title`)),
    el('p', {}, t(`step.${step.id}.text`)));
  if (step.allowed) {
    card.append(el('button', { type: 'button', class: 'run primary', onclick: () => run(card, step) }, t('learn.run')));
  } else {
    card.append(el('p', { class: 'dim needs' }, ...tNodes('learn.needs', { role: t(`learn.role.${step.need}`) })));
  }
  card.append(el('div', { class: 'learn-result', 'aria-live': 'polite' }));
  return card;
}

async function showSteps() {
  list.replaceChildren();
  const vm = picker.value;
  if (!vm) return;
  const reply = await api('GET', `/api/vms/${encodeURIComponent(vm)}/learn`);
  list.append(...reply.steps.map(stepCard));
}

async function loadVms(preferred) {
  const vms = (await api('GET', '/api/vms')).filter((vm) => vm.state === 'running');
  picker.replaceChildren(...vms.map((vm) => el('option', { value: vm.name, class: 'val' }, vm.name)));
  if (preferred && vms.some((vm) => vm.name === preferred)) picker.value = preferred;
  status.replaceChildren(vms.length ? '' : t('learn.pick.none'));
  await showSteps();
}

createButton.addEventListener('click', async () => {
  const me = await api('GET', '/api/auth/me');
  const name = `learn-${me.username}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 48);
  createButton.disabled = true;
  status.replaceChildren(...tNodes('learn.creating', { vm: name }));
  try {
    await api('POST', '/api/vms', { name, template: 'tiny', vcpus: 2, start: true });
    status.replaceChildren(...tNodes('learn.created', { vm: name }));
    await loadVms(name);
  } catch (err) {
    toast(err.message, true);
    status.replaceChildren();
  } finally {
    createButton.disabled = false;
  }
});

picker.addEventListener('change', showSteps);

await loadMessages();
await loadVms(root.dataset.vm);
