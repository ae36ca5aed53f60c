// Sign-in page: POST /api/auth/login, then go where the user was headed.
import { t, val } from './i18n.js';

const form = document.getElementById('login-form');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.hidden = true;
  const response = await fetch('/api/auth/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin',
    body: JSON.stringify({ username: form.username.value, password: form.password.value }),
  });
  if (response.ok) {
    location.href = form.dataset.next || '/';
    return;
  }
  const body = await response.json().catch(() => ({}));
  // The server's reason stays in its words (the API speaks English); the page's own words are translated.
  error.replaceChildren(body.detail ? val(body.detail) : t('login.failed', { status: response.status }));
  error.hidden = false;
});
