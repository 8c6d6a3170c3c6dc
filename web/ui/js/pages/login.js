// Login: the fixed entry points input[name=user], input[name=password] and
// button[type=submit]; wrong passwords and throttling are said in words.
import { api, ApiError } from '../api.js';
import { h, field } from '../dom.js';
import { t, language, languages } from '../i18n.js';
import { afterLogin, switchLanguage, title } from '../app.js';

export function render() {
  title(t('login.title'));
  const msg = h('div', { class: 'msg error', role: 'alert', 'aria-live': 'assertive' });
  const user = h('input', { name: 'user', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', text: t('login.submit') });
  const form = h('form', { novalidate: true }, field(t('login.user'), user),
    field(t('login.password'), password), msg, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    if (!user.value || !password.value) {
      msg.textContent = t('login.empty');
      return;
    }
    submit.disabled = true;
    try {
      const me = await api('POST', '/login', { user: user.value.trim(), password: password.value });
      await afterLogin(me);
    } catch (err) {
      if (err instanceof ApiError && err.status === 429)
        msg.textContent = t('login.throttled', { s: err.retryAfter || 60, m: Math.ceil((err.retryAfter || 60) / 60) });
      else if (err instanceof ApiError && err.status === 401)
        msg.textContent = t('login.wrong');
      else
        msg.textContent = t('login.failed', { why: err.message });
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  const lang = h('select', { 'aria-label': t('lang.label'), onchange: (e) => switchLanguage(e.target.value) },
    languages.map((l) => h('option', { value: l, selected: l === language(), text: t('lang.' + l) })));
  return [h('div', { class: 'login panel' },
    h('div', { class: 'brandmark', 'aria-hidden': 'true', text: 'VIGIL' }),
    h('h1', { tabindex: '-1', text: t('login.title') }),
    form,
    h('div', { class: 'lang' }, lang))];
}
