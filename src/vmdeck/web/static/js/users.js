// Users (administrators): accounts and memberships through POST /api/auth/users, GET /api/users and
// PUT/DELETE /api/projects/P/members/U.
import { api, confirmDialog, el, toast, track } from './common.js';
import { clearErrors, serverError, showErrors } from './forms.js';
import { t, tNodes, val } from './i18n.js';

const ROLES = [['viewer', t('users.role.viewer')], ['operator', t('users.role.operator')], ['manager', t('users.role.manager')]];
let users = [];

async function load() {
  users = await api('GET', '/api/users');
  document.querySelector('#user-table tbody').replaceChildren(...users.map((u) => el('tr', { dataset: { user: u.username } },
    el('td', {}, val(u.username), u.disabled ? el('span', { class: 'dim' }, ` ${t('users.disabled')}`) : ''),
    el('td', {}, t(u.is_admin ? 'common.yes' : 'common.no')),
    el('td', { class: 'memberships' }, Object.keys(u.projects).length ? Object.entries(u.projects).map(([project, role]) =>
      el('span', { class: 'membership', dataset: { project } }, val(project), ': ', t(`role.${role}`),
        el('button', { type: 'button', class: 'link-button remove', 'aria-label': t('users.remove.label', { user: u.username, project }),
                       onclick: () => removeMember(u.username, project) }, '×'))) : el('span', { class: 'dim' }, t('users.no_project'))))));
  document.getElementById('m-user').replaceChildren(...users.map((u) => el('option', { value: u.username, class: 'val' }, u.username)));
}

async function loadProjects() {
  const projects = await api('GET', '/api/projects');
  for (const select of document.querySelectorAll('.project-select')) {
    select.replaceChildren(...(select.id === 'u-project' ? [el('option', { value: '' }, t('users.no_project_yet'))] : []),
      ...projects.map((p) => el('option', { value: p.name, class: 'val' }, p.name)));
  }
  for (const select of document.querySelectorAll('.role-select')) {
    select.replaceChildren(...ROLES.map(([value, label]) => el('option', { value }, label)));
  }
}

async function removeMember(username, project) {
  const ok = await confirmDialog({ title: t('users.remove.title', { user: username, project }), confirm: t('common.remove'),
    message: tNodes('users.remove.message', { user: username, project }) });
  if (!ok) return;
  await track(t('users.remove.task', { user: username, project }), () => api('DELETE',
    `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(username)}`), () => t('users.removed', { user: username, project }))
    .catch(() => {});
  load();
}

const userForm = document.getElementById('user-form');
userForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(userForm);
  const username = userForm.username.value.trim();
  const errors = {};
  if (!username) errors.username = t('users.error.name');
  else if (users.some((u) => u.username === username)) errors.username = tNodes('users.error.exists', { user: username });
  if (userForm.password.value.length < 8) errors.password = t('account.error.short');
  if (showErrors(userForm, errors)) return;
  const body = { username, password: userForm.password.value, is_admin: userForm.is_admin.checked,
                 project: userForm.project.value || null, role: userForm.role.value };
  try {
    await track(t('users.create.task', { user: username }), () => api('POST', '/api/auth/users', body), () => t('users.created', { user: username }));
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
  if (!username) errors.username = t('users.error.choose');
  if (!project) errors.project = t('users.error.no_project');
  if (showErrors(memberForm, errors)) return;
  try {
    const roleWord = t(`role.${role}`);
    await track(t('users.member.task', { user: username, role: roleWord, project }), () => api('PUT',
      `/api/projects/${encodeURIComponent(project)}/members/${encodeURIComponent(username)}`, { role }),
    () => t('users.member.done', { user: username, role: roleWord, project }));
    load();
  } catch (error) {
    showErrors(memberForm, serverError(error));
  }
});

load().catch((error) => toast(error.message, true));
loadProjects().catch((error) => toast(error.message, true));
