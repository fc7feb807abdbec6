import { get } from '../api.ts';
import { useData } from '../data.ts';
import { EVENT_TYPES } from '../dates.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { DataTable, ErrorText, Exports, Field, Loading, value } from '../ui.tsx';
import { setParams, useLocation } from '../url.ts';

type Event = {
  event_id: string;
  type: string;
  occurred_at: string;
  business_id: string;
  user_id: string;
  thread_id: string;
  channel: string;
  props: Record<string, unknown>;
};
type Row = Omit<Event, 'props'> & { props: string };

export function Events(props: { ctx: Ctx }) {
  const { q } = useLocation();
  const type = q.get('type') ?? '';
  const user = q.get('user') ?? '';
  const cursor = q.get('cursor') ?? '';
  const business = props.ctx.business;
  const params = new URLSearchParams({ limit: '50' });
  if (type) params.set('type', type);
  if (user) params.set('user_id', user);
  if (business) params.set('business_id', business);
  if (cursor) params.set('cursor', cursor);
  const url = `/v1/events?${params}`;
  const { data, error, loading } = useData(url, () => get<{ events: Event[]; next: string | null }>(url));
  const rows: Row[] = (data?.events ?? []).map((e) => ({ ...e, props: JSON.stringify(e.props) }));
  const columns = [
    { key: 'occurred_at' as const, label: 'Occurred (UTC)' },
    { key: 'type' as const, label: 'Type' },
    { key: 'business_id' as const, label: 'Business' },
    { key: 'user_id' as const, label: 'User' },
    { key: 'channel' as const, label: 'Channel' },
    { key: 'props' as const, label: 'Props' },
    { key: 'event_id' as const, label: 'Event id' },
  ];
  return (
    <section>
      <form class="editor" onSubmit={(e) => e.preventDefault()}>
        <Field label="Type">
          <select name="type" value={type} onChange={(e) => setParams({ type: value(e), cursor: undefined })}>
            <option value="">any</option>
            {EVENT_TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </Field>
        <Field label="User">
          <input
            name="user"
            value={user}
            onChange={(e) => setParams({ user: value(e).trim(), cursor: undefined })}
          />
        </Field>
      </form>
      <Loading loading={loading} />
      <ErrorText error={error} />
      {data && (
        <DataTable
          testId="events-table"
          caption="Stored events, newest first (50 a page)"
          rows={rows}
          columns={columns}
        />
      )}
      <div class="row">
        <button type="button" disabled={!cursor} onClick={() => setParams({ cursor: undefined })}>
          Newest
        </button>
        <button
          type="button"
          disabled={!data?.next}
          onClick={() => setParams({ cursor: data?.next ?? undefined })}
        >
          Older
        </button>
      </div>
      <Exports name={fileName('events', business, type, user)} columns={columns} rows={rows} />
    </section>
  );
}
