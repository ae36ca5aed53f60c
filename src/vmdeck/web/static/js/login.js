// Sign-in page: POST /api/auth/login, then go where the user was headed.
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
  error.textContent = body.detail || `sign-in failed (HTTP ${response.status})`;
  error.hidden = false;
});
