import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, type Session, call, get } from './api.ts';
import { Attribution } from './pages/attribution.tsx';
import { Campaigns } from './pages/campaigns.tsx';
import { Events } from './pages/events.tsx';
import { Funnels } from './pages/funnels.tsx';
import { Login } from './pages/login.tsx';
import { Overview } from './pages/overview.tsx';
import { Segments } from './pages/segments.tsx';
import { ErrorText } from './ui.tsx';
import { navigate, setParams, useLocation } from './url.ts';
import './styles.css';

export type Ctx = {
  session: Session;
  business?: string;
  can: (role: 'marketer' | 'analyst') => boolean;
};

const PAGES = [
  { path: '/overview', title: 'Overview', role: 'analyst', view: Overview },
  { path: '/segments', title: 'Segments', role: 'marketer', view: Segments },
  { path: '/campaigns', title: 'Campaigns', role: 'either', view: Campaigns },
  { path: '/funnels', title: 'Funnels', role: 'analyst', view: Funnels },
  { path: '/attribution', title: 'Attribution', role: 'analyst', view: Attribution },
  { path: '/events', title: 'Events', role: 'analyst', view: Events },
] as const;

// The theme follows the system unless chosen here; the choice (not a secret) is kept locally.
const THEME_KEY = 'parley-theme';
function applyTheme(t: string | null) {
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem(THEME_KEY));

function ThemeToggle() {
  const [theme, setTheme] = useState(localStorage.getItem(THEME_KEY) ?? 'system');
  const change = (t: string) => {
    setTheme(t);
    if (t === 'system') localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, t);
    applyTheme(t);
  };
  return (
    <label class="theme">
      <span>Theme</span>
      <select value={theme} onChange={(e) => change((e.currentTarget as HTMLSelectElement).value)}>
        <option value="system">System</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function BusinessPicker(props: { session: Session; business?: string }) {
  const limited = props.session.businesses;
  if (limited)
    return (
      <label class="business">
        <span>Business</span>
        <select
          value={props.business}
          onChange={(e) => setParams({ business: (e.currentTarget as HTMLSelectElement).value })}
        >
          {limited.map((b) => (
            <option key={b} value={b}>
              {b}
            </option>
          ))}
        </select>
      </label>
    );
  return (
    <label class="business">
      <span>Business</span>
      <input
        value={props.business ?? ''}
        placeholder="all businesses"
        onChange={(e) => setParams({ business: (e.currentTarget as HTMLInputElement).value.trim() })}
      />
    </label>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [failure, setFailure] = useState<unknown>(null);
  const { path, q } = useLocation();
  useEffect(() => {
    get<Session>('/v1/session').then(setSession, (e) => {
      // 401: not signed in (or the session ended); anything else is shown as it is.
      if (e instanceof ApiError && e.status === 401) setSession(null);
      else setFailure(e);
    });
  }, []);
  if (failure) return <ErrorText error={failure} />;
  if (session === undefined) return <p class="muted">Loading…</p>;
  if (session === null) return <Login onSignedIn={setSession} />;

  const can = (role: 'marketer' | 'analyst') =>
    session.roles.includes(role) || session.roles.includes('admin');
  const allowed = PAGES.filter((p) =>
    p.role === 'either' ? can('marketer') || can('analyst') : can(p.role),
  );
  const page = allowed.find((p) => p.path === path);
  if (!page) {
    if (allowed[0]) navigate(`${allowed[0].path}${location.search}`, true);
    return allowed[0] ? null : <p>This key has no role the dashboards serve (marketer or analyst).</p>;
  }
  const business = q.get('business') ?? session.businesses?.[0] ?? undefined;
  const signOut = async () => {
    await call('DELETE', '/v1/session');
    setSession(null);
  };
  const View = page.view;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <strong class="brand">Parley</strong>
        <nav aria-label="Pages">
          {allowed.map((p) => (
            <a
              key={p.path}
              href={`${p.path}${business && q.get('business') ? `?business=${encodeURIComponent(business)}` : ''}`}
              aria-current={p === page ? 'page' : undefined}
              onClick={(e) => {
                e.preventDefault();
                const href = (e.currentTarget as HTMLAnchorElement).getAttribute('href');
                if (href) navigate(href);
              }}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <div class="tools">
          <BusinessPicker session={session} business={business} />
          <ThemeToggle />
          <span class="muted roles">{session.roles.join(' + ')}</span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <h1>{page.title}</h1>
        <View ctx={{ session, business, can }} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (!root) throw new Error('index.html has no #app element');
render(<App />, root);
