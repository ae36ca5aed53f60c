// Users (administrators): accounts and memberships through POST /api/auth/users, GET /api/users and
// PUT/DELETE /api/projects/P/members/U.
import { api, confirmDialog, el, toast, track } from './common.js';
import { clearErrors, serverError, showErrors } from './forms.js';

const ROLES = [['viewer', 'viewer (reads)'], ['operator', 'operator (powers, consoles)'], ['manager', 'manager (everything in the project)']];
let users = [];

async function load() {
  users = await api('GET', '/api/users');
  document.querySelector('#user-table tbody').replaceChildren(...users.map((u) => el('tr', { dataset: { user: u.username } },
    el('td', {}, u.username, u.disabled ? el('span', { class: 'dim' }, ' (disabled)') : ''),
    el('td', {}, u.is_admin ? 'yes' : 'no'),
    el('td', { class: 'memberships' }, Object.keys(u.projects).length ? Object.entries(u.projects).map(([project, role]) =>
      el('span', { class: 'membership', dataset: { project } }, `${project}: ${role}`,
        el('button', { type: 'button', class: 'link-button remove', 'aria-label': `Remove ${u.username} from ${project}`,
                       onclick: () => removeMember(u.username, project) }, '×'))) : el('span', { class: 'dim' }, 'no project')))));
  document.getElementById('m-user').replaceChildren(...users.map((u) => el('option', { value: u.username }, u.username)));
}

async function loadProjects() {
  const projects = await api('GET', '/api/projects');
  for (const select of document.querySelectorAll('.project-select')) {
    select.replaceChildren(...(select.id === 'u-project' ? [el('option', { value: '' }, '(none yet)')] : []),
      ...projects.map((p) => el('option', { value: p.name }, p.name)));
  }
  for (const select of document.querySelectorAll('.role-select')) {
    select.replaceChildren(...ROLES.map(([value, label]) => el('option', { value }, label)));
  }
}

async function removeMember(username, project) {
  const ok = await confirmDialog({ title: `Remove ${username} from ${project}?`, confirm: 'Remove',
    message: `${username} no longer sees ${project}'s VMs, nor uses its tokens for it. The account stays.` });
  if (!ok) return;
  await track(`Remove ${username} from ${project}`, () => api('DELETE',
    `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(username)}`), () => `${username} left ${project}`)
    .catch(() => {});
  load();
}

const userForm = document.getElementById('user-form');
userForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(userForm);
  const username = userForm.username.value.trim();
  const errors = {};
  if (!username) errors.username = 'Choose a user name.';
  else if (users.some((u) => u.username === username)) errors.username = `There is already a user named ${username}.`;
  if (userForm.password.value.length < 8) errors.password = 'At least 8 characters.';
  if (showErrors(userForm, errors)) return;
  const body = { username, password: userForm.password.value, is_admin: userForm.is_admin.checked,
                 project: userForm.project.value || null, role: userForm.role.value };
  try {
    await track(`Create user ${username}`, () => api('POST', '/api/auth/users', body), () => `User ${username} created`);
    userForm.reset();
    load();
  } catch (error) {
    showErrors(userForm, serverError(error));
  }
});

const memberForm = document.getElementById('member-form');
memberForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(memberForm);
  const { username, project, role } = { username: memberForm.username.value, project: memberForm.project.value, role: memberForm.role.value };
  const errors = {};
  if (!username) errors.username = 'Choose a user.';
  if (!project) errors.project = 'Create a project first.';
  if (showErrors(memberForm, errors)) return;
  try {
    await track(`Make ${username} ${role} of ${project}`, () => api('PUT',
      `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(username)}`, { role }),
    () => `${username} is ${role} of ${project}`);
    load();
  } catch (error) {
    showErrors(memberForm, serverError(error));
  }
});

load().catch((error) => toast(error.message, true));
loadProjects().catch((error) => toast(error.message, true));
