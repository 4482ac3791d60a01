// The end-to-end login script: from an application URL through the IdP's login form and back to the application.
import type { Browser, BrowserResponse, ChainStep } from './browser.ts';
import { TestkitError, TestkitErrorCode } from './errors.ts';
import { parseFirstForm } from './html-form.ts';

/** Options of {@link loginThroughIdp}. */
export interface LoginThroughIdpOptions {
  /** Most requests in each of the two legs (before and after the form). Default 20. */
  maxSteps?: number;
  /** Stop before requesting a matching URL (see {@link Browser.follow}). */
  stopAt?: (url: string) => boolean;
}

/** Where the login ended up and every hop on the way. */
export interface LoginThroughIdpResult {
  finalResponse: BrowserResponse;
  chain: ChainStep[];
}

/**
 * Follows redirects from `startUrl` to the IdP's login form, submits the user's credentials and
 * follows every redirect until a response that is not one (or `stopAt`). When no login form shows up
 * (the IdP session already exists, or `stopAt` fired) the journey simply ends there.
 * Throws PORTCULLIS_TESTKIT_LOGIN_FAILED when the IdP answers the submission with the form again.
 */
export async function loginThroughIdp(
  browser: Browser,
  startUrl: string,
  user: { username: string; password: string },
  opts: LoginThroughIdpOptions = {},
): Promise<LoginThroughIdpResult> {
  const followOpts = { max: opts.maxSteps ?? 20, ...(opts.stopAt ? { stopAt: opts.stopAt } : {}) };
  const toForm = await browser.follow(startUrl, undefined, followOpts);
  if (!hasPasswordForm(toForm.final)) return { finalResponse: toForm.final, chain: toForm.chain };

  const submitted = await browser.submitLoginForm(toForm.final, user.username, user.password);
  if (hasPasswordForm(submitted)) {
    throw new TestkitError(
      TestkitErrorCode.LoginFailed,
      `the IdP rejected the credentials of ${user.username} (status ${submitted.status} at ${submitted.url})`,
    );
  }
  const back = await browser.followFrom(submitted, followOpts);
  return { finalResponse: back.final, chain: [...toForm.chain, ...back.chain] };
}

function hasPasswordForm(response: BrowserResponse): boolean {
  if (response.status !== 200) return false;
  return parseFirstForm(response.body, response.url)?.fields.some((f) => f.type === 'password') ?? false;
}
