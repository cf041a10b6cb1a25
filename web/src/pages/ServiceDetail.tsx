import { useState } from 'react'
import { Link } from 'wouter'
import { apiURL, sendJSON, type Point, type REDOperations, type REDServices } from '../api'
import { ChangeList, toMarker, useChanges } from '../changes'
import { TimeChart } from '../components/Chart'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtPct, fmtRate, fmtSeconds, promString } from '../format'
import { useFetch } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { href } from '../url'
import { RateCoverage, REDTable, secs } from './Services'

// REDCharts draws the service's rate, error ratio and p99 over the range
// (its incoming requests, as on the overview), with the changes that
// touched it (its deploys, and the config items it applies) as markers.
function REDCharts({ name, startMs, endMs }: { name: string; startMs: number; endMs: number }) {
  const start = startMs / 1000
  const end = endMs / 1000
  const { data, error, loading } = useFetch<REDServices>(apiURL('/api/red/services', { start: secs(startMs), end: secs(endMs) }))
  const changes = useChanges(start, end, name)
  if (loading && !data) return <Loading what="the RED charts" />
  if (error) return <ErrorBox error={error} what="the RED charts" />
  const svc = data?.data.services.find((r) => r.name === name)
  if (!svc?.series) return <Empty>No incoming requests of {name} in this range — widen the time range.</Empty>
  const charts: { title: string; points: Point[] | undefined; color: string; fmt: (v: number) => string; floor: number; testId: string }[] = [
    { title: 'Rate', points: svc.series.rate, color: '#1f6feb', fmt: (v) => fmtRate(v), floor: 1, testId: 'red-chart-rate' },
    { title: 'Error ratio', points: svc.series.errorRatio, color: '#cf222e', fmt: (v) => fmtPct(v), floor: 0.01, testId: 'red-chart-errors' },
    { title: 'p99 latency', points: svc.series.p99, color: '#8250df', fmt: (v) => fmtSeconds(v), floor: 0.01, testId: 'red-chart-p99' },
  ]
  const markers = changes.map(toMarker)
  // From zero; a series of zeros (no errors) up to 1% rather than 100.
  const fromZero = (floor: number) => (_u: unknown, _min: number, max: number): [number, number] => [0, max > 0 ? max * 1.1 : floor]
  return (
    <>
      <div className="red-charts">
        {charts.map((c) => {
          const points = c.points ?? []
          return (
            <div key={c.testId}>
              <h3>{c.title}</h3>
              <TimeChart
                testId={c.testId}
                times={points.map((p) => p[0])}
                series={[{ label: c.title, values: points.map((p) => p[1]), color: c.color }]}
                xRange={[start, end]}
                height={180}
                yFormat={c.fmt}
                yRange={fromZero(c.floor)}
                markers={markers}
              />
            </div>
          )
        })}
      </div>
      <ChangeList changes={changes} />
    </>
  )
}

// SnapshotManifest is the part of POST /api/v1/snapshots' answer the
// button shows (docs/snapshots.md).
interface SnapshotManifest {
  id: string
  answered: number
  instances: { id: string; status: string; error?: string }[]
}

// SnapshotButton asks every live instance of the service for its fault
// scene (vigil snapshot --service NAME) and links the bundle. It needs the
// admin role when authentication is on; a refusal shows the server's reason.
function SnapshotButton({ name }: { name: string }) {
  const [busy, setBusy] = useState(false)
  const [result, setResult] = useState<SnapshotManifest | null>(null)
  const [error, setError] = useState<string | null>(null)
  const take = async () => {
    setBusy(true)
    setError(null)
    setResult(null)
    try {
      setResult(await sendJSON<SnapshotManifest>('POST', apiURL('/api/v1/snapshots'), { service: name, cpu_seconds: 5 }))
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    } finally {
      setBusy(false)
    }
  }
  return (
    <div className="snapshot" data-testid="snapshot">
      <button type="button" onClick={take} disabled={busy}>
        {busy ? 'Capturing (5 s CPU profile)…' : 'Incident snapshot'}
      </button>
      {error && <span className="error"> {error}</span>}
      {result && (
        <span>
          {' '}
          {result.answered} of {result.instances.length} instances answered
          {result.instances
            .filter((i) => i.status !== 'ok')
            .map((i) => ` · ${i.id}: ${i.status}`)
            .join('')}{' '}
          <a href={apiURL(`/api/v1/snapshots/${encodeURIComponent(result.id)}`)} download>
            Download {result.id}.tar.gz
          </a>
        </span>
      )}
    </div>
  )
}

export default function ServiceDetail({ name }: { name: string }) {
  const t = useTimeRange()
  const tp = timeParams(t)
  const { data, error, loading } = useFetch<REDOperations>(
    apiURL('/api/red/operations', { service: name, start: secs(t.start), end: secs(t.end) }),
  )
  const ops = data?.data.operations ?? []
  const promql = `sum by (span_name, status_code) (rate(traces_span_metrics_calls_total{service_name=${promString(name)}}[1m]))`
  return (
    <section>
      <div className="crumbs">
        <Link href={href('/', tp)}>Services</Link> / <span>{name}</span>
      </div>
      <h1>{name}</h1>
      <div className="actions">
        <Link href={href('/traces', { ...tp, service: name })}>Search traces</Link>
        <Link href={href('/logs', { ...tp, service: name })}>Logs</Link>
        <Link href={href('/explore', { ...tp, query: promql })}>Metrics</Link>
        <Link href={href('/profiles', { ...tp, service: name })} data-testid="service-profiles">
          Profiles
        </Link>
        <Link href={href('/map', tp)}>Service map</Link>
      </div>
      <SnapshotButton name={name} />
      <h2>Rate, errors and latency</h2>
      <REDCharts name={name} startMs={t.start} endMs={t.end} />
      <h2>Operations</h2>
      {loading && !data && <Loading what="operations" />}
      {error && <ErrorBox error={error} what="operations" />}
      {data && ops.length === 0 && <Empty>No operations of {name} in this range — widen the time range.</Empty>}
      {ops.length > 0 && <RateCoverage covered={data?.data.covered} startMs={t.start} endMs={t.end} />}
      {ops.length > 0 && (
        <REDTable
          testId="operations"
          nameHeader="Operation"
          rows={ops}
          link={(r) => href('/traces', { ...tp, service: name, operation: r.name })}
        />
      )}
    </section>
  )
}
