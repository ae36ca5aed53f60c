// History charts of one VM (or of the host) over 1 hour, 1 day or 30 days, drawn as small SVGs of our own,
// and the threshold notices (VM pinned at 100 % CPU, disk in a nearly full pool, host over its vCPU ratio).
// Self-contained: it needs the #history block (templates/history_panel.html) and common.js.
import { api, el } from './common.js';
import { formatDate, t, tNodes, val } from './i18n.js';

const panel = document.getElementById('history');
const kind = panel.dataset.kind;
const name = panel.dataset.name;
const url = kind === 'vm' ? `/api/vms/${encodeURIComponent(name)}/history` : '/api/host/history';
const status = document.getElementById('history-status');
const SPAN = { '1h': 3600, '1d': 86400, '30d': 30 * 86400 };
const COLORS = ['#2f6fde', '#1f8f4e'];
const NS = 'http://www.w3.org/2000/svg';
let range = '1h';

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function nice(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function tick(value) {
  return value >= 100 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
}

function clock(seconds) {
  return formatDate(seconds * 1000, range === '30d' ? 'day' : 'clock');
}

// One chart: up to two lines over the range's window, ending now; a gap where no sample was taken.
function draw(target, points, step, series) {
  const chart = document.getElementById(target);
  chart.replaceChildren();
  const width = 440; const height = 150; const left = 44; const right = 6; const top = 8; const bottom = 18;
  const plotW = width - left - right; const plotH = height - top - bottom;
  const now = Date.now() / 1000; const start = now - SPAN[range];
  const values = series.flatMap((s) => points.map(s.value).filter((v) => v != null));
  const ceiling = nice(Math.max(1, ...values));
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH - f * plotH;
    chart.append(svg('line', { x1: left, x2: left + plotW, y1: y, y2: y, class: 'grid' }));
    chart.append(svg('text', { x: left - 4, y: y + 3, 'text-anchor': 'end', class: 'axis' }, tick(f * ceiling)));
  }
  chart.append(svg('text', { x: left, y: height - 4, class: 'axis val' }, clock(start)));
  chart.append(svg('text', { x: left + plotW, y: height - 4, 'text-anchor': 'end', class: 'axis' }, t('chart.now')));
  const x = (t) => left + ((t - start) / (now - start)) * plotW;
  const y = (v) => top + plotH - (Math.min(v, ceiling) / ceiling) * plotH;
  // Few points in a wide window (a VM started minutes ago, on the 1-hour chart): each gets a dot.
  const dots = points.length < 90;
  series.forEach((s, i) => {
    let d = ''; let last = null;
    for (const p of points) {
      const v = s.value(p);
      if (v == null || p[0] < start) { last = null; continue; }
      // A gap longer than two steps (the server was down, the VM off) is not bridged by a line.
      d += `${last === null || p[0] - last > 2 * step ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(v).toFixed(1)} `;
      last = p[0];
      if (dots) chart.append(svg('circle', { cx: x(p[0]).toFixed(1), cy: y(v).toFixed(1), r: 2, fill: COLORS[i] }));
    }
    chart.append(svg('path', { d: d.trim(), fill: 'none', stroke: COLORS[i], 'stroke-width': 1.5,
                                class: `line line-${i}` }));
    chart.append(svg('text', { x: left + 6 + i * 110, y: top + 10, fill: COLORS[i], class: 'legend' }, s.label));
  });
  chart.dataset.points = String(points.length);
  chart.dataset.max = String(Math.max(0, ...series.flatMap((s) => points.map(s.value).filter((v) => v != null))));
}

async function load() {
  let answer;
  try {
    answer = await api('GET', `${url}?range=${range}`);
  } catch (error) {
    status.replaceChildren(val(error.message));
    return;
  }
  const field = (f) => answer.fields.indexOf(f);
  const pick = (f, scale = 1) => (p) => (field(f) < 0 || p[field(f)] == null ? null : p[field(f)] / scale);
  const points = answer.points;
  const step = answer.step_s >= 60 ? t('unit.min', { n: answer.step_s / 60 }) : t('unit.s', { n: answer.step_s });
  status.replaceChildren(...(points.length ? tNodes('history.points', { n: points.length, step }) : [t('history.none')]));
  draw('history-cpu', points, answer.step_s, [{ label: t('history.legend.cpu'), value: pick('cpu_pct') }]);
  draw('history-mem', points, answer.step_s, [{ label: t('history.legend.resident'), value: pick('rss_bytes', 1048576) },
                                               { label: t('history.legend.touched'), value: pick('touched_bytes', 1048576) }]);
  draw('history-disk', points, answer.step_s, [{ label: t('history.legend.read'), value: pick('disk_read_bps', 1024) },
                                                { label: t('history.legend.write'), value: pick('disk_write_bps', 1024) }]);
  draw('history-net', points, answer.step_s, [{ label: t('history.legend.received'), value: pick('net_rx_bps', 1024) },
                                               { label: t('history.legend.sent'), value: pick('net_tx_bps', 1024) }]);
}

async function loadNotices() {
  const list = document.getElementById('metrics-notices');
  let found = [];
  try {
    found = await api('GET', '/api/metrics/notices');
  } catch {
    return;
  }
  const mine = kind === 'vm' ? found.filter((n) => n.subject === name) : found;
  // A notice is the server's sentence (its numbers and names in it): shown as it came.
  list.replaceChildren(...mine.map((n) => el('li', { class: 'notice', dataset: { kind: n.kind } }, val(n.message))));
}

for (const button of panel.querySelectorAll('[data-range]')) {
  button.addEventListener('click', () => {
    range = button.dataset.range;
    for (const other of panel.querySelectorAll('[data-range]')) {
      other.setAttribute('aria-pressed', String(other === button));
    }
    load();
  });
}

load();
loadNotices();
setInterval(() => { if (!document.hidden) { load(); loadNotices(); } }, 10000);
