import { Link } from 'wouter'
import { apiURL, type REDOperations } from '../api'
import { Empty, ErrorBox, Loading } from '../components/States'
import { promString } from '../format'
import { useFetch } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { href } from '../url'
import { RateCoverage, REDTable, secs } from './Services'

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
        <Link href={href('/map', tp)}>Service map</Link>
      </div>
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
