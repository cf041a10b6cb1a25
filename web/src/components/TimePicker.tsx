import { useState } from 'react'
import { QUICK_RANGES, absoluteRange, useTimeRange } from '../time'
import { useSetQuery } from '../url'

// datetime-local values are local wall-clock time without a zone.
function toLocalInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3)
  return d.toISOString().slice(0, 19)
}

export function TimePicker() {
  const t = useTimeRange()
  const setQuery = useSetQuery()
  const [custom, setCustom] = useState<{ start: string; end: string } | null>(null)
  const isQuick = QUICK_RANGES.some((r) => r.from === t.from) && t.to === 'now'

  return (
    <div className="timepicker">
      <select
        aria-label="Time range"
        value={isQuick ? t.from : 'custom'}
        onChange={(e) => {
          if (e.target.value === 'custom') {
            setCustom({ start: toLocalInput(t.start), end: toLocalInput(t.end) })
          } else {
            setCustom(null)
            setQuery({ from: e.target.value, to: null })
          }
        }}
      >
        {QUICK_RANGES.map((r) => (
          <option key={r.from} value={r.from}>
            {r.label}
          </option>
        ))}
        <option value="custom">{isQuick ? 'Custom…' : t.label}</option>
      </select>
      <button type="button" onClick={t.refresh} title="Re-read the range relative to now and reload">
        Refresh
      </button>
      {custom && (
        <form
          className="custom-range"
          onSubmit={(e) => {
            e.preventDefault()
            const s = new Date(custom.start).getTime()
            const en = new Date(custom.end).getTime()
            if (isFinite(s) && isFinite(en) && s < en) {
              setQuery(absoluteRange(s, en))
              setCustom(null)
            }
          }}
        >
          <label>
            From <input type="datetime-local" step="1" value={custom.start} onChange={(e) => setCustom({ ...custom, start: e.target.value })} />
          </label>
          <label>
            To <input type="datetime-local" step="1" value={custom.end} onChange={(e) => setCustom({ ...custom, end: e.target.value })} />
          </label>
          <button type="submit">Apply</button>
          <button type="button" onClick={() => setCustom(null)}>
            Cancel
          </button>
        </form>
      )}
    </div>
  )
}
