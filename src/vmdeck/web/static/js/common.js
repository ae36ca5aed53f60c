// Shared by every page: REST calls with the CSRF token, the live event stream, small DOM helpers.

export const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.kind = body?.error || 'error';
    this.field = body?.field || null;
  }
}

// fetch() with JSON in and out; every error body of vmdeck is {"error", "detail", "field"}.
export async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, credentials: 'same-origin',
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) {
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
    throw new ApiError(401, { detail: 'signed out' });
  }
  const data = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

// The live event stream (libvirt's domain events, pushed by the server); reconnects by itself.
export function connectEvents(onMessage) {
  const status = document.getElementById('stream-status');
  let delay = 500;
  const open = () => {
    const socket = new WebSocket(wsUrl('/api/events'));
    socket.onopen = () => { delay = 500; if (status) { status.dataset.state = 'live'; status.textContent = 'event stream: live'; } };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = () => {
      if (status) { status.dataset.state = 'down'; status.textContent = 'event stream: reconnecting'; }
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')));
  return node;
}

export function toast(message, bad = false) {
  const box = document.getElementById('toast');
  if (!box) return;
  const item = el('div', { class: bad ? 'bad' : '' }, message);
  box.append(item);
  setTimeout(() => item.remove(), bad ? 8000 : 4000);
}

// A tiny line chart on a canvas: one or more series, scaled to the largest value seen.
export function drawLines(canvas, seriesList, { max = null } = {}) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const all = seriesList.flatMap((s) => s.values.filter((v) => v != null));
  const top = max ?? Math.max(1, ...all);
  const colors = ['#2f6fde', '#1f8f4e', '#b7791f', '#c53030', '#805ad5', '#319795'];
  seriesList.forEach((series, i) => {
    const values = series.values;
    ctx.strokeStyle = colors[i % colors.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    values.forEach((v, x) => {
      const px = values.length > 1 ? (x / (values.length - 1)) * (width - 2) + 1 : 1;
      const py = height - 2 - ((v ?? 0) / top) * (height - 4);
      if (x === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  });
  ctx.fillStyle = '#6b7483';
  ctx.font = '10px sans-serif';
  ctx.fillText(String(Math.round(top)), 2, 10);
}

export function formatBytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

document.getElementById('logout')?.addEventListener('click', async () => {
  await api('POST', '/api/auth/logout').catch(() => {});
  location.href = '/login';
});
