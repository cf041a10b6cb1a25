import { useEffect, useState } from 'react'
import { Link } from 'wouter'
import { apiURL } from '../api'
import { changeClass, DiffFlameGraph, type DiffNode, FlameGraph, fmtChange, type ProfileNode } from '../components/FlameGraph'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtDurationMs, fmtNumber, fmtTime } from '../format'
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
interface RangeView {
  start: string
  end: string
  profiles: number
  total: number
}
interface FunctionChange {
  name: string
  file?: string
  baseline_self: number
  comparison_self: number
  baseline_share: number
  comparison_share: number
  change: number
}
interface DiffView {
  unit: string
  baseline: RangeView
  comparison: RangeView
  flamegraph: DiffNode
  changes: FunctionChange[]
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

// rangeText gives one side of a diff as local times to the second.
const rangeText = (r: RangeView) => `${fmtTime(Date.parse(r.start)).slice(0, 19)} – ${fmtTime(Date.parse(r.end)).slice(0, 19)}`

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
  // "Compare with": nothing, the equal range before (the API's default
  // baseline), or a custom baseline range as the API takes it.
  const compare = q.get('compare') ?? ''
  const baselineStart = q.get('baseline_start') ?? ''
  const baselineEnd = q.get('baseline_end') ?? ''
  const [baseDraft, setBaseDraft] = useState({ start: baselineStart, end: baselineEnd })
  useEffect(() => setBaseDraft({ start: baselineStart, end: baselineEnd }), [baselineStart, baselineEnd])

  const params = { service, type, start: secs(t.start), end: secs(t.end), label: labels, span_id: spanID || undefined }
  const ready = service !== ''
  const flame = useFetch<Envelope<ProfileView & { flamegraph: ProfileNode }>>(ready ? apiURL('/api/v1/profiles/flamegraph', params) : null)
  const top = useFetch<Envelope<ProfileView & { functions: TopFunction[] }>>(ready ? apiURL('/api/v1/profiles/top', { ...params, limit: 20 }) : null)
  const comparing = ready && (compare === 'previous' || (compare === 'custom' && baselineStart !== ''))
  const diff = useFetch<Envelope<DiffView>>(
    comparing
      ? apiURL('/api/v1/profiles/diff', {
          ...params,
          limit: 20,
          baseline_start: compare === 'custom' ? baselineStart : undefined,
          baseline_end: compare === 'custom' && baselineEnd ? baselineEnd : undefined,
        })
      : null,
  )
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
          if (draftLabels)
            setQuery({
              label: draftLabels,
              baseline_start: compare === 'custom' ? baseDraft.start.trim() : null,
              baseline_end: compare === 'custom' ? baseDraft.end.trim() : null,
            })
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
        <label>
          Compare with
          <select
            name="compare"
            value={compare}
            onChange={(e) => setQuery({ compare: e.target.value, ...(e.target.value === 'custom' ? {} : { baseline_start: null, baseline_end: null }) })}
          >
            <option value="">Nothing</option>
            <option value="previous">The previous equal range</option>
            <option value="custom">A custom range</option>
          </select>
        </label>
        {compare === 'custom' && (
          <>
            <label>
              Baseline start (RFC 3339 or unix seconds)
              <input name="baseline_start" value={baseDraft.start} placeholder="2026-01-01T10:00:00Z" onChange={(e) => setBaseDraft({ ...baseDraft, start: e.target.value })} />
            </label>
            <label>
              Baseline end (empty: as long as the range)
              <input name="baseline_end" value={baseDraft.end} onChange={(e) => setBaseDraft({ ...baseDraft, end: e.target.value })} />
            </label>
          </>
        )}
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
          /ingest — see docs/profiling.md. The demo shop (vigil demo) profiles itself.
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
          {compare === 'custom' && baselineStart === '' && <Empty>Give the baseline's start (and end) and apply to compare.</Empty>}
          {comparing && (
            <>
              <h2>Diff flame graph</h2>
              {diff.loading && !diff.data && <Loading what="the diff" />}
              {diff.error && <ErrorBox error={diff.error} what="the diff" />}
              {diff.data && (
                <>
                  <p className="hint" data-testid="diff-ranges">
                    Baseline {rangeText(diff.data.data.baseline)}: {diff.data.data.baseline.profiles} profile
                    {diff.data.data.baseline.profiles === 1 ? '' : 's'}, {fmt(diff.data.data.baseline.total)}. Comparison{' '}
                    {rangeText(diff.data.data.comparison)}: {diff.data.data.comparison.profiles} profile{diff.data.data.comparison.profiles === 1 ? '' : 's'},{' '}
                    {fmt(diff.data.data.comparison.total)}. Values are compared as shares of each range&apos;s whole.
                  </p>
                  {diff.data.data.baseline.profiles + diff.data.data.comparison.profiles > 0 ? (
                    <DiffFlameGraph key={service + type + compare} root={diff.data.data.flamegraph} format={fmt} />
                  ) : (
                    <Empty>No {type} samples of {service} in either range.</Empty>
                  )}
                  <h2>Top changes</h2>
                  <table className="grid" data-testid="profile-changes">
                    <thead>
                      <tr>
                        <th>Function</th>
                        <th className="num">Baseline self</th>
                        <th className="num">Comparison self</th>
                        <th className="num">Baseline %</th>
                        <th className="num">Comparison %</th>
                        <th className="num">Change</th>
                      </tr>
                    </thead>
                    <tbody>
                      {diff.data.data.changes.map((f) => (
                        <tr key={f.name + (f.file ?? '')} data-change={f.change > 0 ? 'grew' : f.change < 0 ? 'shrank' : 'same'}>
                          <td className="mono" title={f.file}>
                            {f.name}
                          </td>
                          <td className="num">{fmt(f.baseline_self)}</td>
                          <td className="num">{fmt(f.comparison_self)}</td>
                          <td className="num">{(f.baseline_share * 100).toFixed(1)}%</td>
                          <td className="num">{(f.comparison_share * 100).toFixed(1)}%</td>
                          <td className={`num ${changeClass(f.change).includes('grew') ? 'change-grew' : changeClass(f.change).includes('shrank') ? 'change-shrank' : ''}`}>
                            {fmtChange(f.change)}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </>
              )}
            </>
          )}
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
