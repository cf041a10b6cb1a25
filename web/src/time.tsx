// The global time range: `from` and `to` in the URL, either relative to now
// ("now-1h", "now") or absolute unix milliseconds. Pages read the resolved
// range from TimeContext; Refresh re-reads "now".
import { createContext, useContext, useMemo, useState, type ReactNode } from 'react'
import { fmtTime } from './format'
import { useQuery } from './url'

export const QUICK_RANGES: { from: string; label: string }[] = [
  { from: 'now-5m', label: 'Last 5 minutes' },
  { from: 'now-15m', label: 'Last 15 minutes' },
  { from: 'now-30m', label: 'Last 30 minutes' },
  { from: 'now-1h', label: 'Last 1 hour' },
  { from: 'now-6h', label: 'Last 6 hours' },
  { from: 'now-24h', label: 'Last 24 hours' },
  { from: 'now-7d', label: 'Last 7 days' },
]
export const DEFAULT_FROM = 'now-1h'

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }

// resolveTime turns "now", "now-15m" or unix milliseconds into unix ms.
export function resolveTime(v: string, now: number): number | null {
  if (v === 'now') return now
  const rel = /^now-(\d+(?:\.\d+)?)([smhdw])$/.exec(v)
  if (rel) return now - parseFloat(rel[1]) * UNITS[rel[2]]
  if (/^\d+$/.test(v)) return parseInt(v, 10)
  return null
}

export interface TimeRange {
  from: string
  to: string
  start: number // unix ms
  end: number // unix ms
  label: string
  refresh: () => void
}

const TimeCtx = createContext<TimeRange | null>(null)

export function TimeProvider({ children }: { children: ReactNode }) {
  const q = useQuery()
  const [tick, setTick] = useState(0)
  const from = q.get('from') || DEFAULT_FROM
  const to = q.get('to') || 'now'
  const value = useMemo(() => {
    const now = Date.now()
    let start = resolveTime(from, now) ?? now - 3600e3
    let end = resolveTime(to, now) ?? now
    if (start >= end) start = end - 60e3
    const quick = QUICK_RANGES.find((r) => r.from === from && to === 'now')
    const rel = /^now-(.+)$/.exec(from)
    const label = quick
      ? quick.label
      : rel && to === 'now'
        ? `Last ${rel[1]}`
        : `${fmtTime(start).slice(0, 19)} – ${fmtTime(end).slice(0, 19)}`
    return { from, to, start, end, label, refresh: () => setTick((t) => t + 1) }
  }, [from, to, tick])
  return <TimeCtx.Provider value={value}>{children}</TimeCtx.Provider>
}

export function useTimeRange(): TimeRange {
  const t = useContext(TimeCtx)
  if (!t) throw new Error('useTimeRange outside TimeProvider')
  return t
}

// timeParams are the from/to URL parameters of the current range, for links
// that keep it.
export function timeParams(t: Pick<TimeRange, 'from' | 'to'>): { from?: string; to?: string } {
  return { from: t.from === DEFAULT_FROM ? undefined : t.from, to: t.to === 'now' ? undefined : t.to }
}

// absoluteRange gives from/to URL parameters for a fixed window.
export function absoluteRange(startMs: number, endMs: number): { from: string; to: string } {
  return { from: String(Math.floor(startMs)), to: String(Math.ceil(endMs)) }
}
