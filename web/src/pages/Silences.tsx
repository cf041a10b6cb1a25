// Silences: Alertmanager's silences (/api/v2/silences), active and pending
// first, expired ones folded away; expire one or create a new one.
import { useCallback, useMemo, useState } from 'react'
import { Link } from 'wouter'
import { sendJSON, type AMAlert, type Matcher, type Silence } from '../api'
import { fmtSpan, isNotConfigured, MatcherChips, matcherText, NoAlertmanager, parseMatcher, SilenceForm } from '../alerting'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtTime } from '../format'
import { useEvery, useFetch, useOnRefresh } from '../hooks'
import { href, useQuery, useSetQuery } from '../url'

const ORDER = { active: 0, pending: 1, expired: 2 }

function when(iso: string): string {
  return fmtTime(new Date(iso)).slice(0, 19)
}

function SilenceRow(props: {
  s: Silence
  silenced: number | undefined
  highlight: boolean
  onExpired: () => void
  onRecreate: (m: Matcher[]) => void
}) {
  const { s } = props
  const [confirm, setConfirm] = useState(false)
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  const now = Date.now()
  const ends = new Date(s.endsAt).getTime()
  const starts = new Date(s.startsAt).getTime()
  const expire = async () => {
    setBusy(true)
    setError('')
    try {
      await sendJSON('DELETE', `/api/v2/silence/${encodeURIComponent(s.id)}`)
      setConfirm(false)
      props.onExpired()
    } catch (e) {
      setError((e as Error).message)
    } finally {
      setBusy(false)
    }
  }
  return (
    <tr className={`silence-row ${props.highlight ? 'highlight' : ''}`} data-testid="silence-row" data-id={s.id}>
      <td>
        <span className={`state-badge ${s.status.state}`}>{s.status.state}</span>
      </td>
      <td>
        <MatcherChips matchers={s.matchers} />
        <div className="muted mono small" title="Silence ID">
          {s.id}
        </div>
      </td>
      <td className="nowrap">
        {when(s.startsAt)}
        {s.status.state === 'pending' && <div className="muted">in {fmtSpan(starts - now)}</div>}
      </td>
      <td className="nowrap">
        {when(s.endsAt)}
        <div className="muted">{ends > now ? `in ${fmtSpan(ends - now)}` : `${fmtSpan(now - ends)} ago`}</div>
      </td>
      <td>{s.createdBy}</td>
      <td className="pre comment">{s.comment}</td>
      <td className="num">{s.status.state === 'expired' ? '' : (props.silenced ?? '–')}</td>
      <td className="nowrap">
        {s.status.state !== 'expired' &&
          (confirm ? (
            <span className="confirm">
              Expire now?{' '}
              <button type="button" className="danger" disabled={busy} onClick={() => void expire()}>
                Yes, expire
              </button>{' '}
              <button type="button" onClick={() => setConfirm(false)}>
                No
              </button>
            </span>
          ) : (
            <button type="button" onClick={() => setConfirm(true)}>
              Expire
            </button>
          ))}{' '}
        <button type="button" className="linkish" onClick={() => props.onRecreate(s.matchers)}>
          {s.status.state === 'expired' ? 'Recreate' : 'Duplicate'}
        </button>
        {error && (
          <div className="form-error" role="alert">
            {error}
          </div>
        )}
      </td>
    </tr>
  )
}

function SilenceTable(props: {
  rows: Silence[]
  counts: Map<string, number> | undefined
  highlight: string
  onExpired: () => void
  onRecreate: (m: Matcher[]) => void
  testId: string
}) {
  return (
    <table className="grid silences" data-testid={props.testId}>
      <thead>
        <tr>
          <th>State</th>
          <th>Matchers</th>
          <th>Starts</th>
          <th>Ends</th>
          <th>Created by</th>
          <th>Comment</th>
          <th className="num" title="Alerts this silence mutes now">
            Alerts
          </th>
          <th />
        </tr>
      </thead>
      <tbody>
        {props.rows.map((s) => (
          <SilenceRow
            key={s.id}
            s={s}
            silenced={props.counts?.get(s.id) ?? (props.counts ? 0 : undefined)}
            highlight={s.id === props.highlight}
            onExpired={props.onExpired}
            onRecreate={props.onRecreate}
          />
        ))}
      </tbody>
    </table>
  )
}

export default function Silences() {
  const q = useQuery()
  const setQuery = useSetQuery()
  const text = q.get('q') ?? ''
  const highlight = q.get('id') ?? ''
  const formOpen = q.get('new') === '1'
  const showExpired = q.get('expired') === '1'
  const [notice, setNotice] = useState('')

  const silences = useFetch<Silence[]>('/api/v2/silences')
  const alerts = useFetch<AMAlert[]>('/api/v2/alerts')
  const reloadAll = useCallback(() => {
    silences.reload()
    alerts.reload()
  }, [silences.reload, alerts.reload])
  useEvery(15_000, reloadAll)
  useOnRefresh(reloadAll)

  // Matchers given in the URL (matcher=name="value", repeatable) prefill the form.
  const initial = useMemo(
    () => q.getAll('matcher').map(parseMatcher).filter((m): m is Matcher => typeof m !== 'string'),
    [q],
  )
  const counts = useMemo(() => {
    if (!alerts.data) return undefined
    const m = new Map<string, number>()
    for (const a of alerts.data) for (const id of a.status.silencedBy ?? []) m.set(id, (m.get(id) ?? 0) + 1)
    return m
  }, [alerts.data])

  const missing = isNotConfigured(silences.error)
  const needle = text.toLowerCase()
  const all = (silences.data ?? [])
    .filter(
      (s) =>
        !needle ||
        s.id.toLowerCase().includes(needle) ||
        s.matchers.some((m) => matcherText(m).toLowerCase().includes(needle)) ||
        s.createdBy.toLowerCase().includes(needle) ||
        s.comment.toLowerCase().includes(needle),
    )
    .sort(
      (a, b) =>
        ORDER[a.status.state] - ORDER[b.status.state] ||
        (a.status.state === 'expired' ? b.endsAt.localeCompare(a.endsAt) : a.endsAt.localeCompare(b.endsAt)),
    )
  const current = all.filter((s) => s.status.state !== 'expired')
  const expired = all.filter((s) => s.status.state === 'expired')
  const onExpired = () => {
    setNotice('Silence expired.')
    reloadAll()
  }
  const onRecreate = (m: Matcher[]) => {
    setNotice('')
    setQuery({ new: '1', matcher: m.map(matcherText) })
    window.scrollTo(0, 0)
  }

  return (
    <section>
      <h1>Silences</h1>
      <p className="hint">
        A silence mutes the notifications of every alert whose labels match all its matchers, from its start to its end. Alerts still show on
        the <Link href="/alerts">alerts page</Link>.
      </p>
      {missing ? (
        <NoAlertmanager what="there are no silences to manage" />
      ) : (
        <>
          <form className="filters" onSubmit={(e) => e.preventDefault()}>
            <label className="wide">
              Search
              <input
                aria-label="Search silences"
                placeholder="matcher, author, comment or ID"
                defaultValue={text}
                onChange={(e) => setQuery({ q: e.target.value }, { replace: true })}
              />
            </label>
            {!formOpen && (
              <button type="button" className="primary" onClick={() => setQuery({ new: '1', matcher: null })}>
                New silence
              </button>
            )}
          </form>
          {formOpen && (
            <SilenceForm
              key={initial.map(matcherText).join(',')}
              initial={initial}
              alerts={alerts.data}
              onCreated={(id) => {
                setNotice(`Silence ${id} created.`)
                setQuery({ new: null, matcher: null, id })
                reloadAll()
              }}
              onCancel={() => setQuery({ new: null, matcher: null })}
            />
          )}
          {notice && (
            <div className="state notice" role="status">
              {notice}
            </div>
          )}
          {silences.loading && !silences.data && <Loading what="silences" />}
          {silences.error && <ErrorBox error={silences.error} what="the silences" />}
          {silences.data && current.length === 0 && (
            <Empty>
              {needle
                ? 'No active or pending silence matches the search.'
                : 'No active or pending silences. Create one with “New silence”, or with the Silence button of an alert on the alerts page.'}
            </Empty>
          )}
          {current.length > 0 && (
            <SilenceTable rows={current} counts={counts} highlight={highlight} onExpired={onExpired} onRecreate={onRecreate} testId="silences-current" />
          )}
          {expired.length > 0 && (
            <details
              className="expired"
              open={showExpired}
              onToggle={(e) => {
                const open = (e.currentTarget as HTMLDetailsElement).open
                if (open !== showExpired) setQuery({ expired: open ? '1' : null }, { replace: true })
              }}
            >
              <summary>Expired ({expired.length})</summary>
              <SilenceTable rows={expired} counts={counts} highlight={highlight} onExpired={onExpired} onRecreate={onRecreate} testId="silences-expired" />
            </details>
          )}
          {alerts.error && !isNotConfigured(alerts.error) && <ErrorBox error={alerts.error} what="the alerts the silences mute" />}
          <p className="hint">
            <Link href={href('/alerts', {})}>← Alerts</Link>
          </p>
        </>
      )}
    </section>
  )
}
