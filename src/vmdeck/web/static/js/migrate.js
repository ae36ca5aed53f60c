// The VM page's migration card: pick a registered host, migrate (live when running), follow the
// progress lines the server publishes on the event stream ({"type": "migration", "vm", "line"}).
import { api, connectEvents, el, toast } from './common.js';
import { t, tNodes, val } from './i18n.js';

const card = document.getElementById('migrate-card');
const vm = card.dataset.vm;
const select = document.getElementById('migrate-to');
const go = document.getElementById('migrate-go');
const log = document.getElementById('migrate-log');
const bar = document.getElementById('migrate-progress');
let current = null;
let can = {};  // the VM's capabilities from the server (vmdeck.vm.state.capabilities), never its state's name

async function load() {
  const [hosts, vms, details] = await Promise.all([
    api('GET', '/api/hosts'), api('GET', '/api/vms'), api('GET', `/api/vms/${encodeURIComponent(vm)}`)]);
  const mine = vms.find((v) => v.name === vm);
  current = mine ? mine.host : null;
  can = details.can || {};
  document.getElementById('migrate-current').textContent = current || '?';
  const last = details.last_migration;
  document.getElementById('migrate-last').replaceChildren(...(last
    ? [...tNodes('migrate.last', { outcome: last.outcome, to: last.to }),
      ...(last.downtime_ms != null ? [', ', ...tNodes('migrate.downtime', { ms: last.downtime_ms })] : []),
      ...(last.total_ms != null ? [', ', ...tNodes('migrate.total', { ms: last.total_ms })] : [])] : []));
  const choices = hosts.filter((h) => h.name !== current);
  select.replaceChildren(...choices.map((h) => el('option', {
    value: h.name, disabled: !h.reachable || h.draining, class: 'val',
  }, `${h.name} (${h.reachable ? (h.draining ? t('hosts.draining') : t('migrate.free', { mib: h.memory_free_mib })) : t('hosts.unreachable')})`)));
  const movable = can.migrate_live || can.migrate_offline;
  go.disabled = !movable || !choices.some((h) => h.reachable && !h.draining);
  go.title = movable ? '' : t('migrate.cannot', { vm, state: t(`state.${String(details.state).replace(/ /g, '_')}`) });
}

go.addEventListener('click', async () => {
  const body = { to: select.value, live: Boolean(can.migrate_live) };
  if (document.getElementById('migrate-timeout-on').checked) body.timeout = Number(document.getElementById('migrate-timeout').value);
  go.disabled = true;
  bar.hidden = false;
  log.replaceChildren();
  try {
    const result = await api('POST', `/api/vms/${encodeURIComponent(vm)}/migrate`, body);
    toast(val(result.summary));
  } catch (error) {
    toast([`${vm}: `, val(error.message)], true);
  } finally {
    bar.hidden = true;
    await load().catch(() => {});
  }
});

connectEvents((message) => {
  if (message.type === 'migration' && message.vm === vm) log.append(el('li', { class: 'val' }, message.line));
  // A new state changes what may be done: ask the server again rather than judge the state here.
  if (message.type === 'state' && message.vm === vm && bar.hidden) load().catch(() => {});
});
load().catch((error) => toast(error.message, true));
