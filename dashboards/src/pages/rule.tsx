import { EVENT_TYPES } from '../dates.ts';
import { Field, value } from '../ui.tsx';

// The rule builder: the whole segment grammar (all / any / not / performed with where, count and
// within). Each node knows its path in the request body, so a validation error from the server
// is shown next to the field it concerns.

export type Rule =
  | { all: Rule[] }
  | { any: Rule[] }
  | { not: Rule }
  | {
      performed: string;
      where?: Record<string, unknown>;
      count?: { gte?: number; lte?: number };
      within_seconds?: number;
    };
type Performed = Extract<Rule, { performed: string }>;
type Errors = Map<string, string>;

const OPS = ['=', 'in', 'gte', 'gt', 'lte', 'lt'] as const;

function clauseOf(v: unknown): { op: (typeof OPS)[number]; text: string } {
  if (v !== null && typeof v === 'object') {
    const [op, arg] = Object.entries(v)[0] ?? ['=', ''];
    if (op === 'in') return { op, text: (arg as unknown[]).join(', ') };
    return { op: op as (typeof OPS)[number], text: String(arg) };
  }
  return { op: '=', text: v === undefined ? '' : String(v) };
}
function clauseValue(op: string, text: string): unknown {
  const scalar = (s: string) => (s !== '' && Number.isFinite(Number(s)) ? Number(s) : s);
  if (op === '=') return scalar(text.trim());
  if (op === 'in') return { in: text.split(',').map((s) => scalar(s.trim())) };
  return { [op]: Number(text) };
}

function Where(props: {
  where: Record<string, unknown>;
  path: string;
  errors: Errors;
  onChange: (w: Record<string, unknown>) => void;
}) {
  const entries = Object.entries(props.where);
  const set = (i: number, field: string, v: unknown) => {
    const next = entries.map(([f, x], j) => (j === i ? [field, v] : [f, x]));
    props.onChange(Object.fromEntries(next));
  };
  return (
    <div class="where">
      {entries.map(([field, v], i) => {
        const c = clauseOf(v);
        return (
          <div class="clause" key={field}>
            <Field label="where field" error={props.errors.get(`${props.path}.where.${field}`)}>
              <input value={field} onChange={(e) => set(i, value(e), v)} />
            </Field>
            <Field label="operator">
              <select value={c.op} onChange={(e) => set(i, field, clauseValue(value(e), c.text))}>
                {OPS.map((o) => (
                  <option key={o}>{o}</option>
                ))}
              </select>
            </Field>
            <Field label="value">
              <input value={c.text} onInput={(e) => set(i, field, clauseValue(c.op, value(e)))} />
            </Field>
            <button
              type="button"
              onClick={() => props.onChange(Object.fromEntries(entries.filter((_, j) => j !== i)))}
            >
              Remove clause
            </button>
          </div>
        );
      })}
      <button
        type="button"
        onClick={() =>
          props.onChange({
            ...props.where,
            [entries.length ? `props.field${entries.length + 1}` : 'channel']: '',
          })
        }
      >
        Add where
      </button>
    </div>
  );
}

function PerformedNode(props: {
  rule: Performed;
  path: string;
  errors: Errors;
  onChange: (r: Rule) => void;
}) {
  const r = props.rule;
  const p = props.path;
  const setCount = (k: 'gte' | 'lte', v: string) => {
    const count = { ...r.count, [k]: v === '' ? undefined : Number(v) };
    if (count[k] === undefined) delete count[k];
    props.onChange({ ...r, count: Object.keys(count).length ? count : undefined });
  };
  return (
    <div class="performed">
      <Field label="performed" error={props.errors.get(`${p}.performed`) ?? props.errors.get(p)}>
        <select value={r.performed} onChange={(e) => props.onChange({ ...r, performed: value(e) })}>
          {EVENT_TYPES.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </Field>
      <Field
        label="at least (times)"
        error={props.errors.get(`${p}.count.gte`) ?? props.errors.get(`${p}.count`)}
      >
        <input
          type="number"
          name="count-gte"
          value={r.count?.gte ?? ''}
          onInput={(e) => setCount('gte', value(e))}
        />
      </Field>
      <Field label="at most (times)" error={props.errors.get(`${p}.count.lte`)}>
        <input
          type="number"
          name="count-lte"
          value={r.count?.lte ?? ''}
          onInput={(e) => setCount('lte', value(e))}
        />
      </Field>
      <Field label="within (days)" error={props.errors.get(`${p}.within_seconds`)}>
        <input
          type="number"
          name="within-days"
          value={r.within_seconds === undefined ? '' : r.within_seconds / 86_400}
          onInput={(e) =>
            props.onChange({
              ...r,
              within_seconds: value(e) === '' ? undefined : Math.round(Number(value(e)) * 86_400),
            })
          }
        />
      </Field>
      <Where
        where={r.where ?? {}}
        path={p}
        errors={props.errors}
        onChange={(w) => props.onChange({ ...r, where: Object.keys(w).length ? w : undefined })}
      />
    </div>
  );
}

export function RuleNode(props: {
  rule: Rule;
  path: string;
  errors: Errors;
  onChange: (r: Rule) => void;
  onRemove?: () => void;
}) {
  const { rule, path, errors, onChange } = props;
  let body: preact.ComponentChildren;
  let kind: string;
  if ('performed' in rule) {
    kind = 'performed';
    body = <PerformedNode rule={rule} path={path} errors={errors} onChange={onChange} />;
  } else if ('not' in rule) {
    kind = 'not';
    body = (
      <RuleNode rule={rule.not} path={`${path}.not`} errors={errors} onChange={(r) => onChange({ not: r })} />
    );
  } else {
    const op = 'all' in rule ? 'all' : 'any';
    const children = 'all' in rule ? rule.all : rule.any;
    const set = (list: Rule[]) => onChange((op === 'all' ? { all: list } : { any: list }) as Rule);
    kind = op;
    body = (
      <>
        <Field label="match">
          <select
            value={op}
            onChange={(e) => onChange((value(e) === 'all' ? { all: children } : { any: children }) as Rule)}
          >
            <option value="all">all of</option>
            <option value="any">any of</option>
          </select>
        </Field>
        {errors.get(`${path}.${op}`) && <span class="error field-error">{errors.get(`${path}.${op}`)}</span>}
        <ul>
          {children.map((c, i) => (
            <li key={i}>
              <RuleNode
                rule={c}
                path={`${path}.${op}.${i}`}
                errors={errors}
                onChange={(r) => set(children.map((x, j) => (j === i ? r : x)))}
                onRemove={() => set(children.filter((_, j) => j !== i))}
              />
            </li>
          ))}
        </ul>
        <div class="row">
          <button type="button" onClick={() => set([...children, { performed: 'message.received' }])}>
            Add condition
          </button>
          <button
            type="button"
            onClick={() => set([...children, { any: [{ performed: 'message.received' }] }])}
          >
            Add group
          </button>
          <button type="button" onClick={() => set([...children, { not: { performed: 'order.placed' } }])}>
            Add exclusion (not)
          </button>
        </div>
      </>
    );
  }
  return (
    <div class={`node node-${kind}`}>
      {kind === 'not' && <strong>not</strong>}
      {body}
      {props.onRemove && (
        <button type="button" class="remove" onClick={props.onRemove}>
          Remove
        </button>
      )}
    </div>
  );
}
