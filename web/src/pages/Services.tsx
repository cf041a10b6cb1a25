import type { ReactNode } from 'react'
import { Link } from 'wouter'
import { apiURL, type RED, type REDServices } from '../api'
import { Sparkline } from '../components/Chart'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtPct, fmtRate, fmtSeconds, fmtSpanShort } from '../format'
import { useFetch } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { href } from '../url'

export const secs = (ms: number) => (ms / 1000).toFixed(3)

// RateCoverage says when rates are over less than the picked range: the
// server divides by the part of the range with spans (e.g. the 6 minutes
// since vigil started in an hour's range), not by the whole range.
export function RateCoverage({ covered, startMs, endMs }: { covered: number | undefined; startMs: number; endMs: number }) {
  const rangeS = (endMs - startMs) / 1000
  if (covered === undefined || covered >= rangeS - 1) return null
  return (
    <p className="hint" data-testid="rate-coverage">
      Rates are per second over the last {fmtSpanShort(covered)}, where spans exist, not over the whole {fmtSpanShort(rangeS)} of the range.
    </p>
  )
}

// REDTable lists services or operations with their rate, errors, latency
// percentiles and sparklines.
export function REDTable(props: {
  rows: RED[]
  nameHeader: string
  link: (r: RED) => string
  extra?: (r: RED) => ReactNode
  testId: string
}) {
  return (
    <table className="grid red" data-testid={props.testId}>
      <thead>
        <tr>
          <th>{props.nameHeader}</th>
          <th className="num">Rate</th>
          <th className="num">Errors</th>
          <th className="num">p50</th>
          <th className="num">p95</th>
          <th className="num">p99</th>
          <th>Rate</th>
          <th>Error ratio</th>
          <th>p99</th>
          {props.extra && <th />}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr key={(r.kind ?? '') + r.name} className={r.errorRatio && r.errorRatio > 0.01 ? 'has-errors' : ''}>
            <td className="name">
              <Link href={props.link(r)}>{r.name}</Link>
              {r.kind && <span className="badge">{r.kind}</span>}
            </td>
            <td className="num">{fmtRate(r.rate)}</td>
            <td className={`num ${r.errorRatio ? 'err' : ''}`}>{fmtPct(r.errorRatio)}</td>
            <td className="num">{fmtSeconds(r.p50)}</td>
            <td className="num">{fmtSeconds(r.p95)}</td>
            <td className="num">{fmtSeconds(r.p99)}</td>
            <td>
              <Sparkline points={r.series?.rate} />
            </td>
            <td>
              {r.errorRatio === 0 && !r.series?.errorRatio?.length ? (
                <span className="muted">no errors</span>
              ) : (
                <Sparkline points={r.series?.errorRatio} color="#cf222e" />
              )}
            </td>
            <td>
              <Sparkline points={r.series?.p99} color="#8250df" />
            </td>
            {props.extra && <td className="links">{props.extra(r)}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  )
}

export function Services() {
  const t = useTimeRange()
  const tp = timeParams(t)
  const { data, error, loading } = useFetch<REDServices>(apiURL('/api/red/services', { start: secs(t.start), end: secs(t.end) }))
  const services = data?.data.services ?? []
  return (
    <section>
      <h1>Services</h1>
      <p className="hint">Requests per second, error ratio and latency of each service's incoming requests (server and consumer spans).</p>
      {loading && !data && <Loading what="services" />}
      {error && <ErrorBox error={error} what="services" />}
      {data && services.length === 0 && (
        <Empty>
          No services in this range — widen the time range or send spans to :4317 (OTLP/gRPC) or :4318 (OTLP/HTTP).
        </Empty>
      )}
      {services.length > 0 && <RateCoverage covered={data?.data.covered} startMs={t.start} endMs={t.end} />}
      {services.length > 0 && (
        <REDTable
          testId="services"
          nameHeader="Service"
          rows={services}
          link={(r) => href(`/services/${encodeURIComponent(r.name)}`, tp)}
          extra={(r) => (
            <>
              <Link href={href('/traces', { ...tp, service: r.name })}>Traces</Link>
              <Link href={href('/logs', { ...tp, service: r.name })}>Logs</Link>
            </>
          )}
        />
      )}
    </section>
  )
}
