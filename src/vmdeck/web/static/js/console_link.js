// The page of a one-time console link (vmdeck.api.console_link): the VM's screen through noVNC, opened
// with the short ticket the page holds. No session: this page can reach nothing but this console.
import RFB from '/static/vendor/novnc/core/rfb.js';
import { t } from './i18n.js';

const root = document.getElementById('link-console');
const screen = document.getElementById('screen');
const status = document.getElementById('link-status');
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const rfb = new RFB(screen, `${scheme}://${location.host}${root.dataset.path}`, { wsProtocols: ['binary'] });
rfb.scaleViewport = true;
rfb.focusOnClick = true;
rfb.addEventListener('connect', () => {
  status.textContent = t('link.connected');
  screen.dataset.connected = 'true';
  rfb.focus();
});
rfb.addEventListener('disconnect', () => {
  status.textContent = t('link.disconnected');
  screen.dataset.connected = 'false';
});
