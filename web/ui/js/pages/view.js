// /view?sources=a,b,c&at=T: up to 4 cameras and one call line on one clock
// and one timeline. Without sources, a form to pick them.
import { get } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { heading } from '../app.js';
import { Player, parseAt } from '../player/player.js';
import { iso } from '../player/timeline.js';

export const MAX_CAMERAS = 4;

export async function render() {
  const q = new URLSearchParams(location.search);
  const { sources: all } = await get('/sources');
  const wanted = (q.get('sources') || '').split(',').filter(Boolean);
  const byName = new Map(all.map((s) => [s.name, s]));
  const cams = wanted.filter((n) => byName.get(n)?.kind === 'video').slice(0, MAX_CAMERAS);
  const line = wanted.find((n) => byName.get(n)?.kind === 'audio');
  const chosen = [...cams, ...(line ? [line] : [])].map((n) => byName.get(n));
  const dropped = wanted.filter((n) => !chosen.some((s) => s.name === n));
  if (!chosen.length) return picker(all, t('view.pick'));
  const names = chosen.map((s) => s.name).join(',');
  const player = new Player(chosen.map((s) => ({ name: s.name, kind: s.kind, codec: s.codec, transcode: s.transcode })),
    parseAt(q.get('at')), (ms) => `/view?sources=${encodeURIComponent(names)}&at=${iso(ms)}`);
  requestAnimationFrame(() => player.start().catch((e) => player.say(String(e.message || e), 'error')));
  return [heading(t('view.title')),
    dropped.length ? h('p', { class: 'msg error', role: 'alert', text: t('view.dropped', { names: dropped.join(', ') }) }) : null,
    player.el,
    picker(all, t('view.change'), chosen.map((s) => s.name))].filter(Boolean);
}

function picker(all, legend, checked = []) {
  const form = h('form', { class: 'panel', method: 'get', action: '/view' },
    h('fieldset', {}, h('legend', { text: legend }),
      all.map((s) => h('label', {}, h('input', { type: 'checkbox', name: 'src', value: s.name,
        checked: checked.includes(s.name) }), s.name + ' (' + t('kind.' + s.kind) + ')'))),
    h('p', { class: 'hint', text: t('view.limit', { n: MAX_CAMERAS }) }),
    h('button', { type: 'submit', text: t('view.open') }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const names = [...form.querySelectorAll('input:checked')].map((x) => x.value);
    history.pushState(null, '', '/view?sources=' + encodeURIComponent(names.join(',')));
    dispatchEvent(new PopStateEvent('popstate'));
  });
  return checked.length ? form : [heading(t('view.title')), form];
}
