// The VM seen from the host, as live charts: per-vCPU CPU, run-queue delay, QEMU's RSS, disk I/O,
// the CPU mode and QEMU's thread table. Samples come from GET /api/vms/{name}/hostview.
import { api, drawLines, el } from './common.js';

const HISTORY = 60;

export function startHostView(name, getState) {
  const section = document.getElementById('hostview');
  const series = { cpu: new Map(), delay: new Map(), rss: [], io: [] };
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
    document.getElementById('hv-summary').textContent = view.summary || '';
    for (const vcpu of view.vcpus || []) {
      pushMap(series.cpu, vcpu.vcpu, vcpu.cpu_pct);
      pushMap(series.delay, vcpu.vcpu, vcpu.delay_ms_per_s);
    }
    push(series.rss, view.rss_mib);
    push(series.io, view.disk_kib_per_s);
    const lines = (map) => [...map.entries()].map(([key, values]) => ({ label: `vCPU ${key}`, values }));
    drawLines(document.getElementById('hv-cpu'), lines(series.cpu), { max: 100 });
    drawLines(document.getElementById('hv-delay'), lines(series.delay));
    drawLines(document.getElementById('hv-rss'), [{ values: series.rss }]);
    drawLines(document.getElementById('hv-io'), [{ values: series.io }]);
    document.querySelector('#hv-threads tbody').replaceChildren(...(view.threads || []).map((t) =>
      el('tr', {}, el('td', {}, t.tid), el('td', {}, t.name), el('td', {}, t.role), el('td', {}, t.cpu ?? ''),
        el('td', {}, t.state ?? ''))));
    section.dataset.live = 'true';
  }
  setInterval(sample, 2000);
  sample();
}
