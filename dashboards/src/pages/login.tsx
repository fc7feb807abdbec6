import { useState } from 'preact/hooks';
import { type Session, post } from '../api.ts';
import { ErrorText } from '../ui.tsx';

/** Signing in: the key goes to the server once, in a POST body; the page keeps only the cookie. */
export function Login(props: { onSignedIn: (s: Session) => void }) {
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const input = form.elements.namedItem('key') as HTMLInputElement;
    try {
      const s = await post<Session>('/v1/session', { key: input.value.trim() });
      input.value = '';
      props.onSignedIn(s);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <main id="main" class="login">
      <h1>Sign in to Parley</h1>
      <form onSubmit={submit}>
        <label class="field">
          <span>API key</span>
          <input name="key" type="password" autocomplete="off" required aria-describedby="login-error" />
        </label>
        <button type="submit">Sign in</button>
        <ErrorText error={error} id="login-error" />
      </form>
      <p class="muted">
        Paste a key with role marketer, analyst or admin. It is checked by the server, which then keeps you
        signed in with a cookie for 12 hours.
      </p>
    </main>
  );
}
