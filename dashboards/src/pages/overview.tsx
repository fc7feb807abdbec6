import { get } from '../api.ts';
import { useData } from '../data.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { Columns, DataTable, ErrorText, Exports, Field, Loading, num, value } from '../ui.tsx';
import { setParams, useLocation } from '../url.ts';

type Overview = {
  from: string;
  to: string;
  per_minute: { minute: string; type: string; channel: string; events: number }[];
  businesses: { business_id: string; events: number; users: number }[];
  ingest: { accepted: number; rejected: number } | null;
  lag: { group: string; topic: string; messages: number }[] | null;
};
type Ready = { ready: boolean } & Record<string, unknown>;

export function Overview(props: { ctx: Ctx }) {
  const { q } = useLocation();
  const minutes = Number(q.get('minutes') ?? 180);
  const business = props.ctx.business;
  const url = `/v1/stats/overview?minutes=${minutes}${business ? `&business_id=${encodeURIComponent(business)}` : ''}`;
  const { data, error, loading } = useData(url, () => get<Overview>(url), 15_000);
  const ready = useData(
    'ready',
    () => fetch('/v1/decisions/ready').then((r) => r.json() as Promise<Ready>),
    15_000,
  );
  const from = data ? Date.parse(data.from) : 0;
  const buckets = new Array(minutes).fill(0) as number[];
  const byType = new Map<string, number>();
  for (const r of data?.per_minute ?? []) {
    const i = Math.floor((Date.parse(r.minute) - from) / 60_000);
    if (i >= 0 && i < minutes) buckets[i] += r.events;
    byType.set(`${r.type}|${r.channel}`, (byType.get(`${r.type}|${r.channel}`) ?? 0) + r.events);
  }
  const typeRows = [...byType].map(([k, events]) => {
    const [type, channel] = k.split('|');
    return { type, channel, events, per_minute: events / minutes };
  });
  typeRows.sort((a, b) => b.events - a.events);
  const typeColumns = [
    { key: 'type' as const, label: 'Type' },
    { key: 'channel' as const, label: 'Channel' },
    { key: 'events' as const, label: 'Events', kind: 'number' as const },
    { key: 'per_minute' as const, label: 'Per minute', kind: 'number' as const },
  ];
  const bizColumns = [
    { key: 'business_id' as const, label: 'Business' },
    { key: 'events' as const, label: 'Events', kind: 'number' as const },
    { key: 'users' as const, label: 'Users', kind: 'number' as const },
  ];
  return (
    <section>
      <form class="editor" onSubmit={(e) => e.preventDefault()}>
        <Field label="Last">
          <select name="minutes" value={String(minutes)} onChange={(e) => setParams({ minutes: value(e) })}>
            <option value="60">hour</option>
            <option value="180">3 hours</option>
            <option value="720">12 hours</option>
            <option value="1440">24 hours</option>
          </select>
        </Field>
      </form>
      <Loading loading={loading && !data} />
      <ErrorText error={error} />
      <div class="cards">
        <div class="card">
          <span class="muted">Decision engine</span>
          <strong>{ready.data ? (ready.data.ready ? 'ready' : 'catching up') : '—'}</strong>
        </div>
        {data?.ingest && (
          <>
            <div class="card">
              <span class="muted">Accepted (this process)</span>
              <strong>{num(data.ingest.accepted)}</strong>
            </div>
            <div class="card">
              <span class="muted">Rejected (this process)</span>
              <strong>{num(data.ingest.rejected)}</strong>
            </div>
          </>
        )}
      </div>
      {data && (
        <>
          <h2>Events per minute (stored, UTC)</h2>
          <Columns values={buckets} />
          <DataTable
            caption="Events by type and channel over the period"
            rows={typeRows}
            columns={typeColumns}
          />
          <Exports
            name={fileName('overview', 'events-by-type', business, `${minutes}min`)}
            columns={typeColumns}
            rows={typeRows}
          />
          <h2>Most active businesses</h2>
          <DataTable caption="Businesses with the most events" rows={data.businesses} columns={bizColumns} />
          <Exports
            name={fileName('overview', 'businesses', business, `${minutes}min`)}
            columns={bizColumns}
            rows={data.businesses}
          />
          {data.lag && (
            <>
              <h2>Consumer lag</h2>
              <DataTable
                caption="Messages not yet committed, per processor"
                rows={data.lag}
                columns={[
                  { key: 'group', label: 'Processor group' },
                  { key: 'topic', label: 'Topic' },
                  { key: 'messages', label: 'Messages', kind: 'number' },
                ]}
              />
            </>
          )}
        </>
      )}
    </section>
  );
}
