// Tests of the first-form reader and the auto-submit detection used by the scripted browser.
import t from 'tap';
import { isAutoSubmitPage, parseFirstForm } from './html-form.ts';

t.test('parseFirstForm resolves the action, reads the method and decodes input values', async (t) => {
  const html = `<p>x</p><form method="POST" action="/session/end/confirm?a=1&amp;b=2">
    <input type="hidden" name="xsrf" value="a&quot;b&#39;c&#x26;">
    <input name=username>
    <input type='password' name='password'/>
    <input name="off" disabled value="x">
  </form><form action="/second"></form>`;
  const form = parseFirstForm(html, 'http://idp.test:8080/session/end');
  t.same(form, {
    action: 'http://idp.test:8080/session/end/confirm?a=1&b=2',
    method: 'POST',
    fields: [
      { name: 'xsrf', value: `a"b'c&`, type: 'hidden' },
      { name: 'username', value: '', type: 'text' },
      { name: 'password', value: '', type: 'password' },
    ],
  });
});

t.test('a form without action or method submits to the page itself with GET', async (t) => {
  const form = parseFirstForm('<form><input name="q" value="1"></form>', 'http://h.test/search?x=1');
  t.equal(form?.action, 'http://h.test/search?x=1');
  t.equal(form?.method, 'GET');
});

t.test('parseFirstForm returns undefined when the page has no form', async (t) => {
  t.equal(parseFirstForm('<p>no form</p>', 'http://h.test/'), undefined);
});

t.test('isAutoSubmitPage recognises the script-submitted form pattern only', async (t) => {
  t.ok(isAutoSubmitPage('<script>document.forms[0].submit()</script><form method="post"></form>'));
  t.notOk(isAutoSubmitPage('<form method="post"><button>Go</button></form>'));
  t.notOk(isAutoSubmitPage('<script>document.forms[0].submit()</script>'));
});
