// The requests the dashboards bench's pages make, from the kept data set's time (`now`), so the
// page bench and the statement bench time the same answers.

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The last 30 days up to the data set's day, as the pages' date range and as API bounds. */
export function pageRange(now: number) {
  const from = `${day(now - 29 * 86_400_000)}T00:00:00.000Z`;
  const to = new Date(Date.parse(`${day(now)}T00:00:00.000Z`) + 86_400_000).toISOString();
  return { from, to, dates: `from=${day(now - 29 * 86_400_000)}&to=${day(now)}` };
}

/** The funnels page's request (4 steps, ordered, a week's window, time to convert). */
export function pageFunnel(now: number) {
  const { from, to } = pageRange(now);
  return {
    steps: ['message.received', 'message.sent', 'message.read', 'order.placed'].map((type) => ({ type })),
    window_seconds: 604_800,
    from,
    to,
    mode: 'ordered' as const,
    // As the page asks for it.
    time_to_convert: true,
  };
}
