// Your account: change your password (POST /api/auth/password); API tokens with scope and expiry
// (GET/POST /api/auth/tokens, DELETE to revoke), the secret shown once.
import { api, confirmDialog, el, toast, track } from './common.js';
import { clearErrors, serverError, serverMessage, showErrors } from './forms.js';
import { formatDate, t, tNodes, val } from './i18n.js';

const pwForm = document.getElementById('password-form');
pwForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(pwForm);
  const errors = {};
  if (!pwForm.old_password.value) errors.old_password = t('account.error.old');
  if (!pwForm.new_password.value) errors.new_password = t('account.error.new');
  else if (pwForm.new_password.value.length < 8) errors.new_password = t('account.error.short');
  if (pwForm.repeat.value !== pwForm.new_password.value) errors.repeat = t('account.error.differ');
  if (showErrors(pwForm, errors)) return;
  try {
    const reply = await track(t('account.password.task'), () => api('POST', '/api/auth/password',
      { old_password: pwForm.old_password.value, new_password: pwForm.new_password.value }),
    (r) => t('account.password.done') + (r.other_sessions_ended ? t('account.password.ended', { n: r.other_sessions_ended }) : ''));
    if (reply) pwForm.reset();
  } catch (error) {
    // The server says which password is wrong or too weak.
    const field = error.field || (/current|old|wrong|incorrect/i.test(error.message) ? 'old_password' : 'new_password');
    showErrors(pwForm, { [field]: serverMessage(error) });
  }
});

function when(iso) {
  return iso ? formatDate(iso) : '—';
}

function tokenStatus(token) {
  if (token.revoked_at) return 'revoked';
  if (token.expires_at && new Date(token.expires_at) < new Date()) return 'expired';
  return 'active';
}

async function loadTokens() {
  const tokens = await api('GET', '/api/auth/tokens');
  document.querySelector('#token-table tbody').replaceChildren(...(tokens.length ? tokens.map((token) => {
    const status = tokenStatus(token);
    return el('tr', { dataset: { token: token.name, id: token.id, status } },
      el('td', { class: 'val' }, token.name, el('span', { class: 'dim' }, ` ${token.prefix}…`)),
      el('td', {}, token.project ? val(token.project) : t('tokens.all_projects')),
      el('td', {}, token.role ? t(`role.${token.role}`) : t('tokens.role.yours_short')), el('td', { class: 'val' }, when(token.created_at)),
      el('td', {}, token.expires_at ? val(when(token.expires_at)) : t('tokens.never')),
      el('td', { class: 'val' }, when(token.last_used_at)), el('td', { class: 'status' }, t(`tokens.status.${status}`)),
      el('td', {}, status === 'active' ? el('button', { class: 'danger revoke', onclick: () => revoke(token) }, t('tokens.revoke')) : ''));
  }) : [el('tr', {}, el('td', { colspan: 8, class: 'dim' }, t('tokens.none')))]));
}

async function revoke(token) {
  const ok = await confirmDialog({ title: t('tokens.revoke.title', { token: token.name }), confirm: t('tokens.revoke'),
    message: tNodes('tokens.revoke.message', { token: token.name, prefix: `${token.prefix}…` }) });
  if (!ok) return;
  await track(t('tokens.revoke.task', { token: token.name }), () => api('DELETE', `/api/auth/tokens/${token.id}`),
    () => t('tokens.revoked', { token: token.name }))
    .catch(() => {});
  loadTokens();
}

async function loadProjects() {
  const me = await api('GET', '/api/auth/me');
  const projects = await api('GET', '/api/projects');
  const select = document.getElementById('tok-project');
  select.replaceChildren(...(me.is_admin ? [el('option', { value: '' }, t('tokens.all_projects'))] : []),
    ...projects.map((p) => el('option', { value: p.name, class: 'val' }, `${p.name} (${t(`role.${p.role}`)})`)));
  // Only an administrator's tokens may live forever.
  if (!me.is_admin) document.querySelector('#tok-expires option[value=""]')?.remove();
}

const tokenForm = document.getElementById('token-form');
tokenForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(tokenForm);
  const name = tokenForm.name.value.trim();
  const errors = {};
  if (!name) errors.name = t('tokens.error.name');
  if (showErrors(tokenForm, errors)) return;
  const expires = tokenForm.expires.value;
  const body = { name, project: tokenForm.project.value || null, role: tokenForm.role.value || null,
                 expires_in_days: expires ? Number(expires) : null };
  try {
    const made = await track(t('tokens.create.task', { token: name }), () => api('POST', '/api/auth/tokens', body),
      () => t('tokens.created_done', { token: name }));
    document.getElementById('token-value').textContent = made.token;
    document.getElementById('token-secret').hidden = false;
    tokenForm.reset();
    loadTokens();
  } catch (error) {
    showErrors(tokenForm, serverError(error));
  }
});

document.getElementById('token-copy').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(document.getElementById('token-value').textContent);
    toast(t('tokens.copied'));
  } catch {
    toast(t('common.copy_refused'), true);
  }
});

loadTokens().catch((error) => toast(error.message, true));
loadProjects().catch((error) => toast(error.message, true));
