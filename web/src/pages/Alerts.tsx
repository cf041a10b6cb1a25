// Alerts: the alerting rules and their alerts (Prometheus /api/v1/rules and
// /api/v1/alerts), and every other alert vigil's Alertmanager holds (posted
// by a Prometheus, amtool or any client of /api/v2/alerts), grouped by alert
// name, with whether Alertmanager has them silenced or inhibited
// (/api/v2/alerts) and a form to silence one.
import { useCallback, useMemo, useState } from 'react'
import { Link } from 'wouter'
import type { AlertingRule, AMAlert, Labels, PromAlert, PromAlerts, RuleGroups } from '../api'
import { isNotConfigured, isSubset, LabelChips, labelsText, matcherOf, NoAlertmanager, SilenceForm, fmtSpan } from '../alerting'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtNumber, fmtTime } from '../format'
import { useEvery, useFetch, useOnRefresh } from '../hooks'
import { href, useQuery, useSetQuery } from '../url'

type State = 'firing' | 'pending' | 'inactive'
const RANK: Record<State, number> = { firing: 0, pending: 1, inactive: 2 }
const STATES: State[] = ['firing', 'pending', 'inactive']

// Source: a vigil rule, or sent to the Alertmanager from elsewhere.
type Source = 'rule' | 'external'

// RowAlert is an alert as the page lists it: a rule's alert, or an
// Alertmanager alert no rule of vigil's accounts for (firing, as
// Alertmanager holds only firing alerts).
type RowAlert = PromAlert & { source: Source; generatorURL?: string }

interface Group {
  name: string
  state: State
  rules: AlertingRule[]
  alerts: RowAlert[]
}

// externalAlerts are the Alertmanager's alerts that none of vigil's rule
// alerts is (by labels, as amStatus matches them).
function externalAlerts(rule: PromAlert[], am: AMAlert[] | undefined): RowAlert[] {
  return (am ?? [])
    .filter((x) => !rule.some((a) => isSubset(a.labels, x.labels)))
    .map((x) => ({
      labels: x.labels,
      annotations: x.annotations ?? {},
      state: 'firing' as const,
      activeAt: x.startsAt,
      source: 'external' as const,
      generatorURL: x.generatorURL,
    }))
}

function groupAlerts(rules: AlertingRule[], alerts: RowAlert[]): Group[] {
  const byName = new Map<string, Group>()
  const get = (name: string) => {
    let g = byName.get(name)
    if (!g) byName.set(name, (g = { name, state: 'inactive', rules: [], alerts: [] }))
    return g
  }
  for (const r of rules) get(r.name).rules.push(r)
  for (const a of alerts) get(a.labels.alertname ?? '').alerts.push(a)
  for (const g of byName.values()) {
    for (const a of g.alerts) if (RANK[a.state] < RANK[g.state]) g.state = a.state
    g.alerts.sort((a, b) => RANK[a.state] - RANK[b.state] || labelsText(a.labels).localeCompare(labelsText(b.labels)))
  }
  return [...byName.values()].sort((a, b) => RANK[a.state] - RANK[b.state] || a.name.localeCompare(b.name))
}

// amStatus finds the alert Alertmanager holds for a rule's alert: the same
// labels (Alertmanager may add external labels).
function amStatus(a: PromAlert, am: AMAlert[] | undefined): AMAlert | undefined {
  return am?.find((x) => isSubset(a.labels, x.labels))
}

function Routing({ alert, am, amMissing }: { alert: PromAlert; am: AMAlert[] | undefined; amMissing: boolean }) {
  if (amMissing) return <span className="muted">no Alertmanager</span>
  if (!am) return <span className="muted">…</span>
  const s = amStatus(alert, am)
  if (!s) return <span className="muted">{alert.state === 'pending' ? 'not sent until firing' : 'not in Alertmanager yet'}</span>
  if (s.status.silencedBy?.length)
    return (
      <span className="routing silenced" data-testid="alert-silenced">
        silenced by{' '}
        {s.status.silencedBy.map((id) => (
          <Link key={id} href={href('/silences', { id })} className="mono">
            {id.slice(0, 8)}
          </Link>
        ))}
      </span>
    )
  if (s.status.inhibitedBy?.length) return <span className="routing inhibited">inhibited</span>
  return <span className="routing active">{s.status.state === 'active' ? 'notifying' : s.status.state}</span>
}

// SourceCell says where an alert comes from; for an external one also the
// generator's address, a link only when it is http(s).
function SourceCell({ alert }: { alert: RowAlert }) {
  if (alert.source === 'rule') return <span className="badge source">vigil rule</span>
  const url = alert.generatorURL ?? ''
  const safe = /^https?:\/\//i.test(url)
  return (
    <span data-testid="alert-source-external">
      <span className="badge source external">external</span>
      {url && (
        <div className="muted small">
          {safe ? (
            <a href={url} target="_blank" rel="noopener noreferrer">
              {hostOf(url)}
            </a>
          ) : (
            url
          )}
        </div>
      )}
    </span>
  )
}

function hostOf(url: string): string {
  try {
    return new URL(url).host || url
  } catch {
    return url
  }
}

function AlertRow(props: {
  alert: RowAlert
  am: AMAlert[] | undefined
  amMissing: boolean
  formOpen: boolean
  onSilence: () => void
  onClose: () => void
  onCreated: (id: string) => void
}) {
  const { alert: a, am } = props
  const summary = a.annotations.summary ?? a.annotations.title
  const description = a.annotations.description
  const other = Object.entries(a.annotations).filter(([k]) => !['summary', 'description', 'title'].includes(k))
  const since = a.activeAt && !a.activeAt.startsWith('0001') ? new Date(a.activeAt) : null
  const value = a.value !== undefined ? parseFloat(a.value) : NaN
  const silenced = !!amStatus(a, am)?.status.silencedBy?.length
  return (
    <>
      <tr className={`alert-row state-${a.state}`} data-testid="alert-row">
        <td>
          <span className={`state-badge ${a.state}`}>{a.state}</span>
        </td>
        <td>
          <LabelChips labels={a.labels} omit={['alertname']} />
        </td>
        <td className="annotations" data-testid="alert-annotations">
          {summary && <div className="summary">{summary}</div>}
          {description && <div className="muted pre">{description}</div>}
          {other.map(([k, v]) => (
            <div key={k} className="muted">
              <span className="mono">{k}</span>: {v}
            </div>
          ))}
        </td>
        <td className="nowrap">
          {since ? (
            <span title={fmtTime(since)}>
              {fmtTime(since).slice(0, 19)}
              <br />
              <span className="muted">{fmtSpan(Date.now() - since.getTime())} ago</span>
            </span>
          ) : (
            '–'
          )}
        </td>
        <td className="num mono">{isNaN(value) ? '–' : fmtNumber(value)}</td>
        <td>
          <SourceCell alert={a} />
        </td>
        <td>
          <Routing alert={a} am={am} amMissing={props.amMissing} />
        </td>
        <td>
          {!props.amMissing && (
            <button type="button" onClick={props.formOpen ? props.onClose : props.onSilence} disabled={silenced && !props.formOpen}>
              {silenced ? 'Silenced' : 'Silence'}
            </button>
          )}
        </td>
      </tr>
      {props.formOpen && (
        <tr className="form-row">
          <td colSpan={8}>
            <SilenceForm
              initial={Object.keys(a.labels)
                .sort()
                .map((k) => matcherOf(k, '=', a.labels[k]))}
              alerts={am}
              onCreated={props.onCreated}
              onCancel={props.onClose}
            />
          </td>
        </tr>
      )}
    </>
  )
}

function RuleInfo({ rules }: { rules: AlertingRule[] }) {
  return (
    <details className="rule-info">
      <summary>{rules.length === 1 ? 'Rule' : `${rules.length} rules`}</summary>
      {rules.map((r, i) => (
        <div key={i} className="rule">
          <pre className="mono">{r.query}</pre>
          <div className="muted">
            {r.duration ? `for ${fmtSpan(r.duration * 1000)} · ` : ''}
            health {r.health}
            {r.labels && Object.keys(r.labels).length > 0 && (
              <>
                {' · '}
                <LabelChips labels={r.labels} />
              </>
            )}
          </div>
        </div>
      ))}
    </details>
  )
}

export default function Alerts() {
  const q = useQuery()
  const setQuery = useSetQuery()
  const stateFilter = q.get('state') ?? ''
  const text = q.get('q') ?? ''
  const silenceFor = q.get('silence') ?? ''
  const [created, setCreated] = useState<string | null>(null)

  const rules = useFetch<RuleGroups>('/api/v1/rules?type=alert')
  const alerts = useFetch<PromAlerts>('/api/v1/alerts')
  const am = useFetch<AMAlert[]>('/api/v2/alerts')
  const reloadAll = useCallback(() => {
    rules.reload()
    alerts.reload()
    am.reload()
  }, [rules.reload, alerts.reload, am.reload])
  useEvery(15_000, reloadAll)
  useOnRefresh(reloadAll)

  const amMissing = isNotConfigured(am.error)
  const groups = useMemo(() => {
    const rs = (rules.data?.data.groups ?? []).flatMap((g) => g.rules).filter((r): r is AlertingRule => r.type === 'alerting')
    const own = alerts.data?.data.alerts ?? []
    // Until vigil's own alerts are known, every Alertmanager alert would
    // look external.
    const others = alerts.data ? externalAlerts(own, am.data) : []
    return groupAlerts(rs, [...own.map((a) => ({ ...a, source: 'rule' as const })), ...others])
  }, [rules.data, alerts.data, am.data])

  const needle = text.toLowerCase()
  const matchText = (labels: Labels) => !needle || labelsText(labels).toLowerCase().includes(needle)
  const shown = groups
    .filter((g) => !stateFilter || g.state === stateFilter)
    .map((g) => ({ ...g, alerts: g.alerts.filter((a) => matchText(a.labels)) }))
    .filter((g) => !needle || g.alerts.length > 0 || g.name.toLowerCase().includes(needle))
  const counts = STATES.map((s) => [s, groups.filter((g) => g.state === s).length] as const)
  const firstLoad = (rules.loading && !rules.data) || (alerts.loading && !alerts.data)

  return (
    <section>
      <h1>Alerts</h1>
      <p className="hint">
        Alerting rules from <code>rule_files</code> and <code>slos</code> in vigil.yaml, and their current alerts; firing alerts go to
        Alertmanager, which groups, silences and notifies. Alerts other senders (a Prometheus, <code>amtool alert add</code>) post to
        vigil's Alertmanager are listed too, as external. Reloads every 15 s.
      </p>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select aria-label="State" value={stateFilter} onChange={(e) => setQuery({ state: e.target.value }, { replace: true })}>
            <option value="">all</option>
            {counts.map(([s, n]) => (
              <option key={s} value={s}>
                {s} ({n})
              </option>
            ))}
          </select>
        </label>
        <label className="wide">
          Labels contain
          <input
            aria-label="Filter by label text"
            placeholder='e.g. severity="page" or checkout'
            defaultValue={text}
            onChange={(e) => setQuery({ q: e.target.value }, { replace: true })}
          />
        </label>
        <Link href="/silences">Silences →</Link>
      </form>
      {amMissing && <NoAlertmanager what="alerts are evaluated and listed here but not routed, notified or silenced" />}
      {am.error && !amMissing && <ErrorBox error={am.error} what="Alertmanager's alerts" />}
      {created && (
        <div className="state notice" role="status" data-testid="silence-created">
          Silence <Link href={href('/silences', { id: created })}>{created}</Link> created.
        </div>
      )}
      {firstLoad && <Loading what="alerts" />}
      {rules.error && <ErrorBox error={rules.error} what="the rules" />}
      {alerts.error && <ErrorBox error={alerts.error} what="the alerts" />}
      {!firstLoad && !rules.error && !alerts.error && groups.length === 0 && (
        <Empty>
          No alerting rules: add rule files with <code>rule_files:</code> or SLOs with <code>slos:</code> to vigil.yaml (see docs/alerting.md), then
          reload vigil.
        </Empty>
      )}
      {groups.length > 0 && shown.length === 0 && <Empty>No alerts match these filters — clear the state or label filter.</Empty>}
      {shown.map((g) => {
        const broken = g.rules.filter((r) => r.health !== 'ok' && r.health !== 'unknown')
        return (
          <div key={g.name} className={`alert-group state-${g.state}`} data-testid="alert-group" data-alertname={g.name}>
            <div className="alert-group-head">
              <span className={`state-badge ${g.state}`}>{g.state}</span>
              <h2>{g.name}</h2>
              <span className="muted">
                {g.alerts.length === 0
                  ? 'no alerts'
                  : STATES.filter((s) => g.alerts.some((a) => a.state === s))
                      .map((s) => `${g.alerts.filter((a) => a.state === s).length} ${s}`)
                      .join(', ')}
              </span>
              {g.rules.length > 0 && <RuleInfo rules={g.rules} />}
              {g.rules.length === 0 && (
                <span className="muted" title="Not from a rule of vigil's: posted to its Alertmanager by another sender">
                  external, no rule in vigil
                </span>
              )}
            </div>
            {broken.map((r, i) => (
              <div key={i} className="state error" role="alert">
                Rule {r.name} is {r.health}: {r.lastError || 'no error message'}
              </div>
            ))}
            {g.alerts.length > 0 && (
              <table className="grid alerts">
                <thead>
                  <tr>
                    <th>State</th>
                    <th>Labels</th>
                    <th>Summary</th>
                    <th>Active since</th>
                    <th className="num">Value</th>
                    <th>Source</th>
                    <th>Alertmanager</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {g.alerts.map((a) => {
                    const key = labelsText(a.labels)
                    return (
                      <AlertRow
                        key={key}
                        alert={a}
                        am={am.data}
                        amMissing={amMissing}
                        formOpen={silenceFor === key}
                        onSilence={() => setQuery({ silence: key })}
                        onClose={() => setQuery({ silence: null })}
                        onCreated={(id) => {
                          setCreated(id)
                          setQuery({ silence: null })
                          reloadAll()
                        }}
                      />
                    )
                  })}
                </tbody>
              </table>
            )}
          </div>
        )
      })}
    </section>
  )
}
