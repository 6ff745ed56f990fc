/** REST calls the UI makes (everything live goes over the socket). */
export interface Me {
  name: string;
  role: 'viewer' | 'operator';
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!res.ok) throw new ApiError(json.error ?? 'HTTP_' + res.status, json.message ?? res.statusText, res.status);
  return json as T;
}

export const api = {
  me: () => call<Me>('GET', '/api/me'),
  loginToken: (token: string) => call<Me>('POST', '/api/login', { token }),
  loginPassword: (username: string, password: string) => call<Me>('POST', '/api/login', { username, password }),
  logout: () => call<{ ok: true }>('POST', '/api/logout'),
};
