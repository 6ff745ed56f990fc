import { api, ApiError, type Me } from '../api.ts';

/** Login form: an access token, or user name and password. Resolves with the user once logged in. */
export function renderLogin(root: HTMLElement, onLogin: (me: Me) => void, message?: string): void {
  root.innerHTML = `
    <main class="login">
      <form class="login-card" autocomplete="on">
        <div class="brand brand-big"><span class="brand-mark" aria-hidden="true"></span>Plantwatch</div>
        <p class="login-lead">Live factory-floor monitoring. Sign in with your access token or your user name.</p>
        <label>Access token<input name="token" type="password" autocomplete="current-password" placeholder="paste the token printed at start"></label>
        <details class="login-user"><summary>Use a user name and password instead</summary>
          <label>User name<input name="username" autocomplete="username"></label>
          <label>Password<input name="password" type="password" autocomplete="current-password"></label>
        </details>
        <p class="login-error" role="alert"></p>
        <button type="submit" class="btn btn-primary btn-big">Sign in</button>
      </form>
    </main>`;
  const form = root.querySelector('form') as HTMLFormElement;
  const err = root.querySelector('.login-error') as HTMLElement;
  if (message) err.textContent = message;
  (form.elements.namedItem('token') as HTMLInputElement).focus();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const token = String(f.get('token') ?? '').trim();
    const username = String(f.get('username') ?? '').trim();
    const password = String(f.get('password') ?? '');
    err.textContent = '';
    try {
      const me = token ? await api.loginToken(token) : await api.loginPassword(username, password);
      onLogin(me);
    } catch (e2) {
      err.textContent = e2 instanceof ApiError && e2.code === 'GATEWAY_LOGIN_FAILED' ? 'That token or password is not valid.' : `Sign-in failed: ${(e2 as Error).message}`;
    }
  });
}
