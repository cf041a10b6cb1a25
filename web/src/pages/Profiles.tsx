import { useEffect, useState } from 'react'
import { Link } from 'wouter'
import { apiURL } from '../api'
import { FlameGraph, type ProfileNode } from '../components/FlameGraph'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtDurationMs, fmtNumber } from '../format'
import { useFetch } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { href, useQuery, useSetQuery } from '../url'
import { secs } from './Services'

// The answers of /api/v1/profiles/* (docs/profiling.md).
interface ProfileService {
  service: string
  kinds: string[]
}
interface ProfileView {
  service: string
  type: string
  unit: string
  span_id?: string
  profiles: number
  total: number
}
interface TopFunction {
  name: string
  file?: string
  self: number
  total: number
}
type Envelope<T> = { status: string; data: T }

// The query types of each kind a service reports, first the default.
const TYPES: Record<string, string[]> = {
  cpu: ['cpu'],
  memory: ['alloc_space', 'inuse_space', 'alloc_objects', 'inuse_objects'],
  goroutine: ['goroutine'],
  mutex: ['mutex', 'mutex_count'],
  block: ['block', 'block_count'],
}

// formatter gives a profile's values in its unit.
function formatter(unit: string): (v: number) => string {
  if (unit === 'nanoseconds') return (v) => fmtDurationMs(v / 1e6)
  if (unit === 'bytes')
    return (v) => (v >= 1 << 30 ? `${(v / (1 << 30)).toFixed(2)} GiB` : v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : v >= 1024 ? `${(v / 1024).toFixed(1)} KiB` : `${v} B`)
  return (v) => fmtNumber(v)
}

// parseLabels reads "a=b, c=d" as label filters; null when malformed.
function parseLabels(s: string): string[] | null {
  const parts = s
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
  return parts.every((p) => /^[^=\s]+=.+$/.test(p)) ? parts : null
}

export default function Profiles() {
  const t = useTimeRange()
  const q = useQuery()
  const setQuery = useSetQuery()
  const service = q.get('service') ?? ''
  const spanID = q.get('span_id') ?? ''
  const labels = q.getAll('label')
  const services = useFetch<Envelope<ProfileService[]>>(apiURL('/api/v1/profiles/services', { start: secs(t.start), end: secs(t.end) }))
  const svc = services.data?.data.find((s) => s.service === service)
  const types = (svc?.kinds ?? []).flatMap((k) => TYPES[k] ?? [])
  const type = q.get('type') || types[0] || 'cpu'
  const [labelDraft, setLabelDraft] = useState(labels.join(', '))
  useEffect(() => setLabelDraft(labels.join(', ')), [labels.join(',')])
  const draftLabels = parseLabels(labelDraft)

  const params = { service, type, start: secs(t.start), end: secs(t.end), label: labels, span_id: spanID || undefined }
  const ready = service !== ''
  const flame = useFetch<Envelope<ProfileView & { flamegraph: ProfileNode }>>(ready ? apiURL('/api/v1/profiles/flamegraph', params) : null)
  const top = useFetch<Envelope<ProfileView & { functions: TopFunction[] }>>(ready ? apiURL('/api/v1/profiles/top', { ...params, limit: 20 }) : null)
  const list = services.data?.data ?? []
  const fmt = formatter(flame.data?.data.unit ?? '')
  const merged = flame.data?.data.profiles ?? 0

  return (
    <section>
      <h1>Profiles</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault()
          if (draftLabels) setQuery({ label: draftLabels })
        }}
      >
        <label>
          Service
          <select name="service" value={service} onChange={(e) => setQuery({ service: e.target.value, type: null })}>
            <option value="">Choose a service</option>
            {list.map((s) => (
              <option key={s.service} value={s.service}>
                {s.service}
              </option>
            ))}
            {service && !svc && <option value={service}>{service}</option>}
          </select>
        </label>
        <label>
          Profile type
          <select name="type" value={type} onChange={(e) => setQuery({ type: e.target.value })}>
            {(types.length ? types : [type]).map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label className="wide">
          Labels (name=value, comma separated)
          <input name="labels" value={labelDraft} placeholder="env=prod, region=eu" onChange={(e) => setLabelDraft(e.target.value)} />
        </label>
        <button type="submit" disabled={!draftLabels}>
          Apply
        </button>
      </form>
      {spanID && (
        <p className="hint" data-testid="span-filter">
          Only the samples of span <span className="mono">{spanID}</span>.{' '}
          <Link href={href('/profiles', { ...timeParams(t), service, type: q.get('type') })}>Show the whole service</Link>
        </p>
      )}
      {services.loading && !services.data && <Loading what="the profiled services" />}
      {services.error && <ErrorBox error={services.error} what="the profiled services" />}
      {services.data && list.length === 0 && (
        <Empty>
          No service sent profiles in this range. Profiles come from pyroscope-go (or vigil's SDK with Profiling enabled) pointed at this server's
          /ingest — see docs/profiling.md. The demo shop sends traces, logs and metrics but no profiles.
        </Empty>
      )}
      {!ready && list.length > 0 && <Empty>Choose a service to see its flame graph.</Empty>}
      {ready && (
        <>
          <div className="actions">
            {merged > 0 && (
              <a href={apiURL('/api/v1/profiles/export', params)} data-testid="profile-download" download>
                Download pprof
              </a>
            )}
            <Link href={href(`/services/${encodeURIComponent(service)}`, timeParams(t))}>Service {service}</Link>
          </div>
          <h2>Flame graph</h2>
          {flame.loading && !flame.data && <Loading what="the flame graph" />}
          {flame.error && <ErrorBox error={flame.error} what="the flame graph" />}
          {flame.data && merged === 0 && (
            <Empty>
              No {type} samples of {service}
              {spanID ? ' in this span' : ''} in this range — widen the time range or loosen the filters.
            </Empty>
          )}
          {flame.data && merged > 0 && (
            <>
              <p className="hint">
                {flame.data.data.profiles} profile{flame.data.data.profiles === 1 ? '' : 's'} merged, {fmt(flame.data.data.total)} in all.
              </p>
              <FlameGraph key={flame.data.data.service + type} root={flame.data.data.flamegraph} format={fmt} />
            </>
          )}
          {top.data && merged > 0 && (
            <>
              <h2>Top functions</h2>
              <table className="grid" data-testid="profile-top">
                <thead>
                  <tr>
                    <th>Function</th>
                    <th className="num">Self</th>
                    <th className="num">Self %</th>
                    <th className="num">Total</th>
                  </tr>
                </thead>
                <tbody>
                  {top.data.data.functions.map((f) => (
                    <tr key={f.name + (f.file ?? '')}>
                      <td className="mono" title={f.file}>
                        {f.name}
                      </td>
                      <td className="num">{fmt(f.self)}</td>
                      <td className="num">{top.data ? ((f.self / (top.data.data.total || 1)) * 100).toFixed(1) : ''}%</td>
                      <td className="num">{fmt(f.total)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
          {top.error && <ErrorBox error={top.error} what="the top functions" />}
        </>
      )}
    </section>
  )
}
