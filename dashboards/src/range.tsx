import { PRESETS, TIME_ZONE, daysAgo, today } from './dates.ts';
import { setParams } from './url.ts';
import { value } from './ui.tsx';

/** From and to days (inclusive), presets, and the time zone they are read in. */
export function DateRange(props: { from: string; to: string }) {
  return (
    <fieldset class="range">
      <legend>Dates ({TIME_ZONE})</legend>
      <label class="field">
        <span>From</span>
        <input type="date" name="from" value={props.from} onChange={(e) => setParams({ from: value(e) })} />
      </label>
      <label class="field">
        <span>To (included)</span>
        <input type="date" name="to" value={props.to} onChange={(e) => setParams({ to: value(e) })} />
      </label>
      <div class="presets">
        {PRESETS.map((p) => (
          <button
            type="button"
            key={p.days}
            onClick={() => setParams({ from: daysAgo(p.days - 1), to: today() })}
          >
            {p.label}
          </button>
        ))}
      </div>
      <p class="muted tz">Times are in {TIME_ZONE}.</p>
    </fieldset>
  );
}
