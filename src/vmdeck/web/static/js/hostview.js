// The VM seen from the host, as live charts: per-vCPU CPU, run-queue delay, QEMU's RSS, disk I/O,
// the CPU mode, QEMU's thread table and its command line. Samples come from GET /api/vms/{name}/hostview.
import { api, drawLines, el } from './common.js';
import { t, tNodes, val } from './i18n.js';

// The summary line: the page's words around the numbers; the CPU mode's reason is the server's sentence.
function summary(view) {
  if (view.error) return [val(view.error)];
  const process = view.detail?.process;
  if (!process) return [];
  const nodes = tNodes('hostview.summary', { pid: process.pid, accelerator: process.accelerator, threads: (view.threads || []).length });
  const why = view.cpu_mode?.why;
  return why ? [...nodes, '; ', el('span', { class: 'val', lang: 'en' }, why)] : nodes;
}

const HISTORY = 60;
const INTERVAL_S = 2;

export function startHostView(name, getState) {
  const section = document.getElementById('tab-hostview');
  const series = { cpu: new Map(), delay: new Map(), rss: [], io: [], total: [] };
  const push = (list, value) => { list.push(value); if (list.length > HISTORY) list.shift(); };
  const pushMap = (map, key, value) => { if (!map.has(key)) map.set(key, []); push(map.get(key), value); };
  let missing = false;

  async function sample() {
    if (missing || getState() !== 'running') return;
    let view;
    try {
      view = await api('GET', `/api/vms/${encodeURIComponent(name)}/hostview`);
    } catch (error) {
      if (error.status === 404 && error.kind !== 'not_found') missing = true;
      return;
    }
    document.getElementById('hv-summary').replaceChildren(...summary(view));
    // QEMU's command line, one option per line; a tenant's has the host's folders cut by the server.
    const cmdline = view.cmdline || [];
    document.getElementById('hv-cmdline-box').hidden = !cmdline.length;
    const shown = cmdline.join('\n');
    const pre = document.getElementById('hv-cmdline');
    if (pre.textContent !== shown) pre.textContent = shown;
    for (const vcpu of view.vcpus || []) {
      pushMap(series.cpu, vcpu.vcpu, vcpu.cpu_pct);
      pushMap(series.delay, vcpu.vcpu, vcpu.delay_ms_per_s);
    }
    push(series.rss, view.rss_mib);
    push(series.io, view.disk_kib_per_s);
    push(series.total, (view.vcpus || []).reduce((sum, v) => sum + (v.cpu_pct ?? 0), 0));
    const lines = (map) => [...map.entries()].map(([key, values]) => ({ label: t('hostview.vcpu', { n: key }), values }));
    const axes = { interval: INTERVAL_S, capacity: HISTORY };
    drawLines(document.getElementById('hv-cpu'), lines(series.cpu), { ...axes, max: 100, unit: '%' });
    drawLines(document.getElementById('hv-delay'), lines(series.delay), { ...axes, unit: 'ms/s' });
    drawLines(document.getElementById('hv-rss'), [{ values: series.rss }], { ...axes, unit: 'MiB' });
    drawLines(document.getElementById('hv-io'), [{ values: series.io }], { ...axes, unit: 'KiB/s' });
    // The overview: all vCPUs together (100 % per vCPU at most) and QEMU's memory.
    const vcpuCount = Math.max(1, series.cpu.size);
    drawLines(document.getElementById('ov-cpu'), [{ values: series.total }], { ...axes, max: 100 * vcpuCount, unit: '%' });
    drawLines(document.getElementById('ov-rss'), [{ values: series.rss }], { ...axes, unit: 'MiB' });
    // The thread's name and role are QEMU's and the host view's own labels ("CPU 0/TCG", "vCPU 0").
    document.querySelector('#hv-threads tbody').replaceChildren(...(view.threads || []).map((thread) =>
      el('tr', {}, el('td', { class: 'val' }, thread.tid), el('td', { class: 'val' }, thread.name),
        el('td', { class: 'val' }, thread.role), el('td', { class: 'val' }, thread.cpu ?? ''),
        el('td', { class: 'val' }, thread.state ?? ''))));
    section.dataset.live = 'true';
  }
  // Empty axes until the first sample: a chart frame, never a blank box.
  for (const id of ['hv-cpu', 'hv-delay', 'hv-rss', 'hv-io', 'ov-cpu', 'ov-rss']) {
    drawLines(document.getElementById(id), [], { interval: INTERVAL_S, capacity: HISTORY });
  }
  setInterval(sample, INTERVAL_S * 1000);
  sample();
}
