// Number and time formatting shared by the pages.

export function fmtDurationMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–'
  if (ms === 0) return '0 ms'
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 1 : 0)} µs`
  if (ms < 10) return `${ms.toFixed(2)} ms`
  if (ms < 1000) return `${ms.toFixed(1)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`
  return `${(ms / 60_000).toFixed(1)} min`
}

export const fmtSeconds = (s: number | null | undefined) =>
  s === null || s === undefined ? '–' : fmtDurationMs(s * 1000)

export function fmtRate(r: number | null | undefined): string {
  if (r === null || r === undefined || !isFinite(r)) return '–'
  if (r === 0) return '0/s'
  if (r < 0.01) return `${(r * 60).toFixed(2)}/min`
  if (r < 10) return `${r.toFixed(2)}/s`
  return `${r.toFixed(1)}/s`
}

export function fmtPct(x: number | null | undefined): string {
  if (x === null || x === undefined || !isFinite(x)) return '–'
  if (x === 0) return '0%'
  if (x < 0.001) return '<0.1%'
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`
}

export function fmtNumber(v: number): string {
  if (!isFinite(v)) return String(v)
  const a = Math.abs(v)
  if (a !== 0 && (a < 0.001 || a >= 1e9)) return v.toExponential(3)
  return Number(v.toPrecision(6)).toString()
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0')

// Local wall-clock time with milliseconds: 2024-01-15 10:05:00.123
export function fmtTime(d: Date | number): string {
  const t = typeof d === 'number' ? new Date(d) : d
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`
}

// Any JSON attribute value as display text.
export function valueText(v: unknown): string {
  if (typeof v === 'string') return v
  if (v === undefined) return ''
  return JSON.stringify(v)
}

// A PromQL string literal (double-quoted, escaped).
export function promString(s: string): string {
  return JSON.stringify(s)
}

// niceStep picks a query_range step (seconds) giving about 250 points.
export function niceStep(rangeS: number): number {
  const raw = rangeS / 250
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400])
    if (s >= raw) return s
  return Math.ceil(raw / 86400) * 86400
}

// Chart axis labels in 24-hour local time, like the tables: the tick
// spacing (seconds) picks the precision, and ticks a day or more apart, or
// over a range crossing days, carry the date.
export function fmtAxisTimes(ticks: number[], spacingS: number): string[] {
  const days = new Set(ticks.map((s) => new Date(s * 1000).toDateString())).size
  return ticks.map((s) => {
    const t = new Date(s * 1000)
    const date = `${pad(t.getMonth() + 1)}-${pad(t.getDate())}`
    const hm = `${pad(t.getHours())}:${pad(t.getMinutes())}`
    if (spacingS >= 86400) return date
    const clock = spacingS < 60 ? `${hm}:${pad(t.getSeconds())}` : hm
    return days > 1 ? `${date} ${clock}` : clock
  })
}

// fmtSpanShort is an amount of time in its largest whole units: 45 s,
// 12 min, 3 h 20 min, 2 d 4 h.
export function fmtSpanShort(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min`
  const h = Math.floor(m / 60)
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`
  const d = Math.floor(h / 24)
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`
}
