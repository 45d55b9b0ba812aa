// Sign-in at the identity provider that issues the API's tokens: OAuth 2.0 authorization code
// with PKCE (S256), the console a public client there (no secret). oauth4webapi does discovery,
// the PKCE challenge, the check of the provider's answer (state, issuer) and the token request.
// The code verifier and state wait in sessionStorage while the browser is at the provider; the
// access token it returns is tried on the gateway before the page keeps it.
import * as oauth from 'oauth4webapi';

const PENDING_KEY = 'concord.console.signin';

/** How the page names the identity provider: the host of its issuer. */
export function providerName(oidc) {
  try {
    return new URL(oidc.issuer).host;
  } catch {
    return oidc.issuer;
  }
}

/** True when this page load is the provider sending the browser back (the redirect URI). */
export function isSignInReturn(oidc) {
  return Boolean(oidc) && location.pathname === oidc.redirectPath;
}

/** An http:// issuer is allowed only as configured (a development provider); oauth4webapi asks for https otherwise. */
function requestOptions(oidc) {
  return new URL(oidc.issuer).protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
}

async function discover(oidc) {
  const issuer = new URL(oidc.issuer);
  try {
    return await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, requestOptions(oidc)));
  } catch (error) {
    throw new Error(
      `${providerName(oidc)} could not be reached from this page, or did not describe itself as ${oidc.issuer} (${reason(error)}).`,
    );
  }
}

/** Goes to the identity provider's sign-in; the browser comes back to the redirect URI. */
export async function startSignIn(oidc) {
  if (!window.isSecureContext || !crypto.subtle) {
    throw new Error(`Sign-in with ${providerName(oidc)} needs the console over https (or on localhost).`);
  }
  const as = await discover(oidc);
  if (!as.authorization_endpoint) throw new Error(`${providerName(oidc)} names no authorization endpoint in its discovery document.`);
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const redirectUri = new URL(oidc.redirectPath, location.origin).href;
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('client_id', oidc.clientId);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', oidc.scope);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('state', state);
  if (oidc.resource) url.searchParams.set('resource', oidc.resource);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ state, codeVerifier, redirectUri, issuer: oidc.issuer }));
  location.assign(url.href);
}

/**
 * On the redirect URI: checks the provider's answer, exchanges the code for an access token,
 * and tries it on the gateway (`checkPath`, answered 200 only for a console role). Resolves
 * with the token; rejects with an Error whose message says in plain words what went wrong.
 * Either way the code leaves the address bar and the pending sign-in is forgotten.
 */
export async function finishSignIn(oidc, { checkPath, roles }) {
  const returned = new URL(location.href);
  history.replaceState(null, '', oidc.consolePath);
  const pending = takePending();
  const name = providerName(oidc);
  if (!returned.searchParams.has('code') && !returned.searchParams.has('error')) {
    throw new Error(`${name} sent the browser back without an answer: sign in again.`);
  }
  if (!pending || pending.issuer !== oidc.issuer) {
    throw new Error(`This sign-in was not started from this tab (or was already used): press “Sign in with ${name}” again.`);
  }
  const as = await discover(oidc);
  const client = { client_id: oidc.clientId };
  let params;
  try {
    params = oauth.validateAuthResponse(as, client, returned.searchParams, pending.state);
  } catch (error) {
    if (error instanceof oauth.AuthorizationResponseError) throw new Error(refusal(name, error.error, error.error_description));
    throw new Error(`The answer from ${name} does not belong to this sign-in (${reason(error)}): sign in again.`);
  }
  let result;
  try {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.None(),
      params,
      pending.redirectUri,
      pending.codeVerifier,
      {
        ...requestOptions(oidc),
        ...(oidc.resource ? { additionalParameters: { resource: oidc.resource } } : {}),
      },
    );
    result = await oauth.processAuthorizationCodeResponse(as, client, response);
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) throw new Error(refusal(name, error.error, error.error_description));
    throw new Error(`${name} signed you in, but the console could not get its token (${reason(error)}).`);
  }
  const token = result.access_token;
  const subject = oauth.getValidatedIdTokenClaims(result)?.sub ?? claimsOf(token).sub;
  let check;
  try {
    check = await fetch(checkPath, { headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    throw new Error(`${name} signed you in, but the gateway could not be reached to check the token (${reason(error)}): try again.`);
  }
  if (check.ok) return token;
  const body = await check.json().catch(() => ({}));
  const who = subject ? ` as ${subject}` : '';
  if (check.status === 403) {
    throw new Error(`${name} signed you in${who}, but that account has no role for the console: it needs one of ${roles.join(', ')}.`);
  }
  throw new Error(
    `${name} signed you in${who}, but the gateway does not accept its token (${body?.error?.message ?? `HTTP ${check.status}`}). ` +
      'It takes JWT access tokens for its own audience: see how the console is registered at the identity provider.',
  );
}

function takePending() {
  const text = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** An OAuth error code from the provider, in plain words. */
function refusal(name, code, description) {
  const why = description ? ` It said: “${description}”.` : '';
  switch (code) {
    case 'access_denied':
      return `${name} did not sign you in: the sign-in was cancelled or refused there.${why}`;
    case 'login_required':
    case 'interaction_required':
    case 'consent_required':
    case 'account_selection_required':
      return `${name} needs you to sign in there first: press “Sign in with ${name}” again.${why}`;
    case 'temporarily_unavailable':
    case 'server_error':
      return `${name} could not sign you in just now: try again in a moment.${why}`;
    case 'invalid_scope':
      return `${name} does not grant the scope the console asks for (CONSOLE_OIDC_SCOPE).${why}`;
    case 'invalid_target':
      return `${name} does not issue tokens for the resource the console asks for (CONSOLE_OIDC_RESOURCE).${why}`;
    case 'invalid_grant':
      return `${name} no longer accepts this sign-in (it was used or took too long): sign in again.${why}`;
    default:
      return `${name} refused the sign-in (${code}): check how the console is registered there.${why}`;
  }
}

function reason(error) {
  return error instanceof Error ? error.message : String(error);
}

function claimsOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload + '='.repeat((4 - (payload.length % 4)) % 4)));
  } catch {
    return {};
  }
}
