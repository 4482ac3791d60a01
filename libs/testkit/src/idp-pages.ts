// HTML pages of the development IdP: login form, logout auto-submit, signed-out and error pages.
import { escapeHtml } from './html-escape.ts';
import type { IdpUser } from './idp-users.ts';

const style = `body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#222}
.banner{background:#b00020;color:#fff;padding:.6rem .8rem;border-radius:4px;font-weight:600}
.error{background:#fde7e9;color:#8a0012;padding:.5rem .8rem;border-radius:4px}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}`;

/** Wording of the banner every IdP page shows; tests look for it. */
export const DEV_IDP_BANNER = 'Development IdP — not for production';

function renderPage(title: string, body: string, headExtra = ''): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${style}</style>${headExtra}
</head>
<body>
<p class="banner" role="alert">${DEV_IDP_BANNER}</p>
${body}
</body>
</html>`;
}

/** Options of {@link renderLoginPage}. */
export interface LoginPageOptions {
  action: string;
  clientId: string;
  username?: string;
  error?: string;
  /** When given, the page lists these users and their passwords (demo convenience). */
  users?: IdpUser[];
}

/** The sign-in form: username, password, an optional error and an optional list of demo users. */
export function renderLoginPage(opts: LoginPageOptions): string {
  const error = opts.error ? `<p class="error" role="alert">${escapeHtml(opts.error)}</p>` : '';
  const users = opts.users?.length
    ? `<h2>Demo users</h2><table><tr><th>username</th><th>password</th><th>groups</th></tr>${opts.users
        .map(
          (u) =>
            `<tr><td>${escapeHtml(u.username)}</td><td>${escapeHtml(u.password)}</td><td>${escapeHtml(u.groups.join(', ') || '—')}</td></tr>`,
        )
        .join('')}</table>`
    : '';
  return renderPage(
    'Sign in',
    `<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(opts.clientId)}</strong></p>
${error}
<form method="post" action="${escapeHtml(opts.action)}" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" type="text" value="${escapeHtml(opts.username ?? '')}" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>
${users}`,
  );
}

/**
 * The RP-initiated logout page. oidc-provider hands us its confirmation form (action + xsrf); we add
 * `logout=yes` and submit it at once with a script, so a browser needs no click. The scripted test
 * browser recognises the same `document.forms[0].submit()` pattern oidc-provider uses for form_post.
 */
export function renderLogoutPage(providerForm: string): string {
  const form = providerForm.replace(
    '</form>',
    '<input type="hidden" name="logout" value="yes"/><noscript><button type="submit">Sign out</button></noscript></form>',
  );
  return renderPage(
    'Signing out',
    `<h1>Signing out…</h1>\n${form}`,
    "\n<script>document.addEventListener('DOMContentLoaded', function () { document.forms[0].submit() });</script>",
  );
}

/** Shown after a logout that had no (valid) post_logout_redirect_uri. */
export function renderSignedOutPage(): string {
  return renderPage('Signed out', '<h1>Signed out</h1>\n<p>Your session at the development IdP has ended.</p>');
}

/** The IdP's error page: the OAuth error and its description. */
export function renderErrorPage(error: string, description?: string): string {
  const detail = description ? `<p>${escapeHtml(description)}</p>` : '';
  return renderPage('Error', `<h1>Something went wrong</h1>\n<p><code>${escapeHtml(error)}</code></p>\n${detail}`);
}
