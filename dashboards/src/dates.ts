// Date ranges are whole days in UTC, shown as such: `to` is the last day included.

export const TIME_ZONE = 'UTC';
export const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
export const today = () => day(Date.now());
export const daysAgo = (n: number) => day(Date.now() - n * 86_400_000);
export const startOf = (d: string) => `${d}T00:00:00.000Z`;
export const endOf = (d: string) => new Date(Date.parse(startOf(d)) + 86_400_000).toISOString();
export const PRESETS = [
  { label: 'Last 7 days', days: 7 },
  { label: 'Last 30 days', days: 30 },
  { label: 'Last 90 days', days: 90 },
];
export const validDay = (s: string | null) => (s && /^\d{4}-\d{2}-\d{2}$/.test(s) ? s : null);

export const EVENT_TYPES = [
  'message.received',
  'message.sent',
  'message.delivered',
  'message.read',
  'referral',
  'postback',
  'optin',
  'optout',
  'handover',
  'lead.submitted',
  'appointment.booked',
  'appointment.cancelled',
  'order.placed',
  'sponsored.served',
  'sponsored.clicked',
  'conversation.blocked',
];
export const CHANNELS = ['messenger', 'whatsapp', 'instagram', 'sms', 'webchat'];
