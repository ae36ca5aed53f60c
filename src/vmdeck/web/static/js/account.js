// Your account: change your password (POST /api/auth/password); API tokens with scope and expiry
// (GET/POST /api/auth/tokens, DELETE to revoke), the secret shown once.
import { api, confirmDialog, el, toast, track } from './common.js';
import { clearErrors, serverError, showErrors } from './forms.js';

const pwForm = document.getElementById('password-form');
pwForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(pwForm);
  const errors = {};
  if (!pwForm.old_password.value) errors.old_password = 'Type your current password.';
  if (!pwForm.new_password.value) errors.new_password = 'Choose a new password.';
  else if (pwForm.new_password.value.length < 8) errors.new_password = 'At least 8 characters.';
  if (pwForm.repeat.value !== pwForm.new_password.value) errors.repeat = 'The two new passwords differ.';
  if (showErrors(pwForm, errors)) return;
  try {
    const reply = await track('Change your password', () => api('POST', '/api/auth/password',
      { old_password: pwForm.old_password.value, new_password: pwForm.new_password.value }),
    (r) => `Password changed${r.other_sessions_ended ? `; ${r.other_sessions_ended} other sign-in(s) ended` : ''}`);
    if (reply) pwForm.reset();
  } catch (error) {
    // The server says which password is wrong or too weak.
    const field = error.field || (/current|old|wrong|incorrect/i.test(error.message) ? 'old_password' : 'new_password');
    showErrors(pwForm, { [field]: error.message });
  }
});

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '—';
}

function tokenStatus(token) {
  if (token.revoked_at) return 'revoked';
  if (token.expires_at && new Date(token.expires_at) < new Date()) return 'expired';
  return 'active';
}

async function loadTokens() {
  const tokens = await api('GET', '/api/auth/tokens');
  document.querySelector('#token-table tbody').replaceChildren(...(tokens.length ? tokens.map((t) => {
    const status = tokenStatus(t);
    return el('tr', { dataset: { token: t.name, id: t.id, status } },
      el('td', {}, t.name, el('span', { class: 'dim' }, ` ${t.prefix}…`)), el('td', {}, t.project ?? 'all (administrator)'),
      el('td', {}, t.role ?? 'yours'), el('td', {}, when(t.created_at)), el('td', {}, t.expires_at ? when(t.expires_at) : 'never'),
      el('td', {}, when(t.last_used_at)), el('td', { class: 'status' }, status),
      el('td', {}, status === 'active' ? el('button', { class: 'danger revoke', onclick: () => revoke(t) }, 'Revoke') : ''));
  }) : [el('tr', {}, el('td', { colspan: 8, class: 'dim' }, 'No tokens yet.'))]));
}

async function revoke(token) {
  const ok = await confirmDialog({ title: `Revoke token ${token.name}?`, confirm: 'Revoke',
    message: `Scripts using ${token.name} (${token.prefix}…) are refused from now on. This cannot be undone: make a new token instead.` });
  if (!ok) return;
  await track(`Revoke token ${token.name}`, () => api('DELETE', `/api/auth/tokens/${token.id}`), () => `${token.name} revoked`)
    .catch(() => {});
  loadTokens();
}

async function loadProjects() {
  const me = await api('GET', '/api/auth/me');
  const projects = await api('GET', '/api/projects');
  const select = document.getElementById('tok-project');
  select.replaceChildren(...(me.is_admin ? [el('option', { value: '' }, 'all projects (administrator)')] : []),
    ...projects.map((p) => el('option', { value: p.name }, `${p.name} (${p.role})`)));
  // Only an administrator's tokens may live forever.
  if (!me.is_admin) document.querySelector('#tok-expires option[value=""]')?.remove();
}

const tokenForm = document.getElementById('token-form');
tokenForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(tokenForm);
  const name = tokenForm.name.value.trim();
  const errors = {};
  if (!name) errors.name = 'Name the token after what will use it.';
  if (showErrors(tokenForm, errors)) return;
  const expires = tokenForm.expires.value;
  const body = { name, project: tokenForm.project.value || null, role: tokenForm.role.value || null,
                 expires_in_days: expires ? Number(expires) : null };
  try {
    const made = await track(`Create token ${name}`, () => api('POST', '/api/auth/tokens', body), () => `Token ${name} created`);
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
    toast('Token copied');
  } catch {
    toast('The browser did not allow copying: select the token and copy it yourself.', true);
  }
});

loadTokens().catch((error) => toast(error.message, true));
loadProjects().catch((error) => toast(error.message, true));
