// Routes whose pages come with later issues (live wall, calls, exports):
// they exist, so links and tests can rely on them, and say what is coming.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { heading } from '../app.js';

export function render(m, route) {
  return [heading(t('later.' + route.key)), h('p', { class: 'hint', text: t('later.text') })];
}
