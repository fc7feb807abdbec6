import { useState } from 'preact/hooks';
import { call, errorPaths, get, post } from '../api.ts';
import { useData } from '../data.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { Columns, DataTable, ErrorText, Exports, Field, Loading, num, value } from '../ui.tsx';
import { jsonParam, setParams, useDebounced, useLocation } from '../url.ts';
import { type Rule, RuleNode } from './rule.tsx';

type Segment = { id: string; name: string; business_id: string | null; rule: Rule; updated_at: string };
type Sized = Segment & { size: number | null };
type Preview = { size: number; sample: string[]; as_of: string };
type Members = { members: { user_id: string; since: string }[]; next: string | null };

const NEW_RULE: Rule = {
  all: [{ performed: 'message.received', count: { gte: 3 }, within_seconds: 30 * 86_400 }],
};

export function Segments(props: { ctx: Ctx }) {
  const { q } = useLocation();
  const id = q.get('id');
  const list = useData('segments', async () => {
    const { segments } = await get<{ segments: Segment[] }>('/v1/segments');
    return Promise.all(
      segments.map(async (s): Promise<Sized> => {
        const r = await get<{ size: number }>(`/v1/segments/${encodeURIComponent(s.id)}/size`).catch(
          () => null,
        );
        return { ...s, size: r?.size ?? null };
      }),
    );
  });
  const segments = list.data ?? [];
  const current = segments.find((s) => s.id === id);
  const columns = [
    { key: 'name' as const, label: 'Name' },
    { key: 'id' as const, label: 'Id' },
    { key: 'business_id' as const, label: 'Business' },
    { key: 'size' as const, label: 'Members now', kind: 'number' as const },
    { key: 'updated_at' as const, label: 'Updated' },
  ];
  return (
    <section>
      <div class="row">
        <button type="button" onClick={() => setParams({ id: 'new', rule: undefined, name: undefined })}>
          New segment
        </button>
      </div>
      <Loading loading={list.loading} />
      <ErrorText error={list.error} />
      {list.data && (
        <DataTable
          testId="segments-table"
          caption="Segments"
          rows={segments}
          columns={columns.map((c) =>
            c.key === 'name'
              ? {
                  ...c,
                  render: (s: Sized) => (
                    <a
                      href={`/segments?id=${encodeURIComponent(s.id)}`}
                      onClick={(e) => {
                        e.preventDefault();
                        setParams({ id: s.id, rule: undefined, name: undefined });
                      }}
                    >
                      {s.name}
                    </a>
                  ),
                }
              : c.key === 'size'
                ? { ...c, render: (s: Sized) => num(s.size) }
                : c,
          )}
        />
      )}
      <Exports name={fileName('segments', props.ctx.business)} columns={columns} rows={segments} />
      {id && (id === 'new' || current) && (
        <Editor key={id} ctx={props.ctx} segment={current} onSaved={() => list.reload()} q={q} />
      )}
      {current && <History id={current.id} />}
      {current && <MembersList id={current.id} />}
    </section>
  );
}

function Editor(props: { ctx: Ctx; segment?: Segment; q: URLSearchParams; onSaved: () => void }) {
  const s = props.segment;
  const rule = jsonParam<Rule>(props.q, 'rule', s?.rule ?? NEW_RULE);
  const name = props.q.get('name') ?? s?.name ?? '';
  const business = s ? (s.business_id ?? undefined) : props.ctx.business;
  const [saveError, setSaveError] = useState<unknown>(null);
  const [saved, setSaved] = useState('');
  const body = { ...(business ? { business_id: business } : {}), rule };
  const key = useDebounced(JSON.stringify(body), 350);
  const preview = useData(key, () => post<Preview>('/v1/segments/preview', JSON.parse(key)));
  const errors = errorPaths(preview.error ?? saveError);
  const setRule = (r: Rule) => setParams({ rule: JSON.stringify(r) }, true);
  const save = async (e: Event) => {
    e.preventDefault();
    setSaveError(null);
    try {
      const input = { name, ...body };
      const r = s
        ? await call<Segment>('PUT', `/v1/segments/${encodeURIComponent(s.id)}`, input)
        : await post<Segment>('/v1/segments', input);
      setSaved(`Saved ${r.name} (${r.id})`);
      props.onSaved();
      setParams({ id: r.id, rule: undefined, name: undefined });
    } catch (err) {
      setSaveError(err);
    }
  };
  return (
    <form class="editor segment-editor" onSubmit={save}>
      <h2>{s ? `Edit ${s.name}` : 'New segment'}</h2>
      <Field label="Name" error={errors.get('name')}>
        <input name="name" value={name} required onInput={(e) => setParams({ name: value(e) }, true)} />
      </Field>
      <p class="muted">Business: {business ?? 'every business'}</p>
      <div class="preview card" aria-live="polite">
        {preview.loading && <span class="muted">Previewing…</span>}
        {preview.data && !preview.error && (
          <p>
            Preview: <strong data-testid="preview-size">{num(preview.data.size)}</strong> users now; sample:{' '}
            {preview.data.sample.slice(0, 10).join(', ') || 'none'}
          </p>
        )}
        {preview.error && errors.size === 0 ? <ErrorText error={preview.error} /> : null}
      </div>
      <RuleNode rule={rule} path="rule" errors={errors} onChange={setRule} />
      <button type="submit">Save segment</button>
      <ErrorText error={saveError} />
      {saved && <p role="status">{saved}</p>}
    </form>
  );
}

function MembersList(props: { id: string }) {
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const page = useData(`${props.id}|${cursor ?? ''}`, () =>
    get<Members>(
      `/v1/segments/${encodeURIComponent(props.id)}/members?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    ),
  );
  const rows = page.data?.members ?? [];
  const columns = [
    { key: 'user_id' as const, label: 'User' },
    { key: 'since' as const, label: 'Member since' },
  ];
  return (
    <section>
      <h2>Members</h2>
      <ErrorText error={page.error} />
      <DataTable caption="Members (50 a page)" rows={rows} columns={columns} />
      <div class="row">
        <button type="button" disabled={!cursor} onClick={() => setCursor(undefined)}>
          First page
        </button>
        <button
          type="button"
          disabled={!page.data?.next}
          onClick={() => setCursor(page.data?.next ?? undefined)}
        >
          Next page
        </button>
      </div>
      <Exports name={fileName('segment', props.id, 'members')} columns={columns} rows={rows} />
    </section>
  );
}

type Day = { day: string; size: number; entered: number; exited: number };

/** Size at the end of each UTC day over the last 30 days, with entries and exits. */
function History(props: { id: string }) {
  const h = useData(props.id, () =>
    get<{ days: Day[] }>(`/v1/segments/${encodeURIComponent(props.id)}/history?days=30`),
  );
  const rows = h.data?.days ?? [];
  const columns = [
    { key: 'day' as const, label: 'Day (UTC)' },
    { key: 'size' as const, label: 'Members', kind: 'number' as const },
    { key: 'entered' as const, label: 'Entered', kind: 'number' as const },
    { key: 'exited' as const, label: 'Exited', kind: 'number' as const },
  ];
  return (
    <section>
      <h2>Last 30 days</h2>
      <Loading loading={h.loading} />
      <ErrorText error={h.error} />
      {h.data && (
        <>
          <Columns values={rows.map((r) => r.size)} />
          <details>
            <summary>Size, entered and exited per day</summary>
            <DataTable caption="Members at the end of each day (today: now)" rows={rows} columns={columns} />
          </details>
          <Exports name={fileName('segment', props.id, 'history-30d')} columns={columns} rows={rows} />
        </>
      )}
    </section>
  );
}
