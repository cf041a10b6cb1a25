// The configuration centre: its items (GET /api/v1/config), one item's
// formal content, active gray and history (GET .../history), and the writes
// (put, gray, promote, abort, rollback) through the same API as `vigil
// config`, so its permissions apply: with authentication on, writes need the
// config role, and a refusal shows the API's reason. The selected item is
// in the URL (?item=namespace/group/key).
import { useState, type FormEvent, type ReactNode } from 'react'
import { Link } from 'wouter'
import { sendBody, sendJSON, type ConfigSummary, type ConfigVersion, type ContentType } from '../api'
import { Empty, ErrorBox, Loading } from '../components/States'
import { buildMatch, matchText, type GuardKind, type MatchKind } from '../configMatch'
import { fmtTime } from '../format'
import { useFetch } from '../hooks'
import { href, useQuery, useSetQuery } from '../url'

const MIME: Record<ContentType, string> = { text: 'text/plain', json: 'application/json', yaml: 'application/yaml' }

interface ItemKey {
  namespace: string
  group: string
  key: string
}

const itemName = (k: ItemKey) => `${k.namespace}/${k.group}/${k.key}`

// parseItem reads namespace/group/key (no part may hold a slash).
function parseItem(s: string | null): ItemKey | null {
  const p = (s ?? '').split('/')
  if (p.length !== 3 || p.some((x) => x === '')) return null
  return { namespace: p[0], group: p[1], key: p[2] }
}

function itemPath(k: ItemKey, suffix = ''): string {
  return `/api/v1/config/${[k.namespace, k.group, k.key].map(encodeURIComponent).join('/')}${suffix}`
}

const when = (iso: string) => fmtTime(new Date(iso)).slice(0, 19)

const guardText = (g: unknown) => (g === undefined || g === null ? '' : JSON.stringify(g))

// Who and why, sent with every write (X-Vigil-Author, X-Vigil-Message). An
// empty author leaves it to the server: the credential the request carries.
interface Attribution {
  author: string
  message: string
}

function attributionHeaders(a: Attribution): Record<string, string> {
  const h: Record<string, string> = {}
  // Header values must be ISO-8859-1; encode anything else as the query
  // parameter would be, rather than fail the request.
  const safe = (s: string) => (/^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s))
  if (a.author.trim()) h['X-Vigil-Author'] = safe(a.author.trim())
  if (a.message.trim()) h['X-Vigil-Message'] = safe(a.message.trim())
  return h
}

interface WriteResult {
  data: { version: number; md5: string }
}

// useWrite runs one write at a time and keeps its outcome: the API's
// answer, or its error reason.
function useWrite(onDone: () => void) {
  const [busy, setBusy] = useState(false)
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null)
  // run reports whether the write was accepted.
  const run = async (what: string, write: () => Promise<WriteResult>): Promise<boolean> => {
    setBusy(true)
    setOutcome(null)
    try {
      const r = await write()
      setOutcome({ ok: true, text: `${what}: version ${r.data.version} (md5 ${r.data.md5})` })
      onDone()
      return true
    } catch (e) {
      setOutcome({ ok: false, text: `${what} refused: ${(e as Error).message}` })
      return false
    } finally {
      setBusy(false)
    }
  }
  return { busy, outcome, run }
}

type Writer = ReturnType<typeof useWrite>

function Outcome({ outcome }: { outcome: { ok: boolean; text: string } | null }) {
  if (!outcome) return null
  return outcome.ok ? (
    <div className="state notice" role="status" data-testid="config-notice">
      {outcome.text}
    </div>
  ) : (
    <div className="state error" role="alert" data-testid="config-error">
      {outcome.text}
    </div>
  )
}

function Badge({ kind, children }: { kind: string; children: ReactNode }) {
  return <span className={`state-badge ${kind}`}>{children}</span>
}

function ItemsTable({ items, selected }: { items: ConfigSummary[]; selected: string | null }) {
  const q = useQuery()
  return (
    <table className="grid" data-testid="config-items">
      <thead>
        <tr>
          <th>Namespace</th>
          <th>Group</th>
          <th>Key</th>
          <th className="num">Version</th>
          <th>Type</th>
          <th>MD5</th>
          <th>Gray</th>
          <th>Author</th>
          <th>Published</th>
        </tr>
      </thead>
      <tbody>
        {items.map((it) => {
          const name = itemName(it)
          const params = new URLSearchParams(q)
          params.set('item', name)
          return (
            <tr key={name} className={name === selected ? 'selected' : ''} data-testid="config-item-row" data-item={name}>
              <td>{it.namespace}</td>
              <td>{it.group}</td>
              <td>
                <Link href={href('/config', params)}>{it.key}</Link>
              </td>
              <td className="num">{it.version}</td>
              <td>{it.content_type}</td>
              <td className="mono small">{it.md5}</td>
              <td>{it.gray ? <Badge kind="gray">{`v${it.gray.version}: ${matchText(it.gray.match)}`}</Badge> : <span className="muted">–</span>}</td>
              <td>{it.author}</td>
              <td className="nowrap">{when(it.time)}</td>
            </tr>
          )
        })}
      </tbody>
    </table>
  )
}

function ContentTypeSelect({ value, onChange }: { value: ContentType; onChange: (t: ContentType) => void }) {
  return (
    <label>
      Content type
      <select value={value} onChange={(e) => onChange(e.target.value as ContentType)} data-testid="config-content-type">
        <option value="text">text</option>
        <option value="json">JSON</option>
        <option value="yaml">YAML</option>
      </select>
    </label>
  )
}

// NewItem puts the first version of an item.
function NewItem({ attribution, onDone }: { attribution: Attribution; onDone: (k: ItemKey) => void }) {
  const [name, setName] = useState('')
  const [content, setContent] = useState('')
  const [type, setType] = useState<ContentType>('yaml')
  const w = useWrite(() => {})
  const submit = (e: FormEvent) => {
    e.preventDefault()
    const k = parseItem(name.trim())
    if (!k) return
    void w
      .run(`Put ${itemName(k)}`, () => sendBody<WriteResult>('PUT', itemPath(k), content, MIME[type], attributionHeaders(attribution)))
      .then((ok) => ok && onDone(k))
  }
  const bad = name.trim() !== '' && !parseItem(name.trim())
  return (
    <form className="config-form" onSubmit={submit} data-testid="config-new-item">
      <h3>New item</h3>
      <div className="row">
        <label>
          Item (namespace/group/key)
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="shop/payments/settings" aria-label="new item" />
        </label>
        <ContentTypeSelect value={type} onChange={setType} />
      </div>
      <label>
        Content
        <textarea value={content} onChange={(e) => setContent(e.target.value)} aria-label="new item content" />
      </label>
      {bad && <span className="form-error">Name the item as namespace/group/key, three parts without slashes.</span>}
      <div>
        <button type="submit" className="primary" disabled={w.busy || !name.trim() || bad}>
          Put
        </button>
      </div>
      <Outcome outcome={w.outcome} />
    </form>
  )
}

function PutForm({ k, formal, attribution, w }: { k: ItemKey; formal: ConfigVersion; attribution: Attribution; w: Writer }) {
  const [content, setContent] = useState(formal.content)
  const [type, setType] = useState<ContentType>(formal.content_type)
  const submit = (e: FormEvent) => {
    e.preventDefault()
    void w.run('Put', () => sendBody<WriteResult>('PUT', itemPath(k), content, MIME[type], attributionHeaders(attribution)))
  }
  return (
    <form className="config-form" onSubmit={submit} data-testid="config-put">
      <h3>Publish a new version</h3>
      <p className="hint">Every instance outside a gray gets it at once.</p>
      <ContentTypeSelect value={type} onChange={setType} />
      <label>
        Content
        <textarea value={content} onChange={(e) => setContent(e.target.value)} aria-label="content" />
      </label>
      <div>
        <button type="submit" className="primary" disabled={w.busy}>
          Put
        </button>
      </div>
    </form>
  )
}

function GrayForm({ k, formal, attribution, w }: { k: ItemKey; formal: ConfigVersion; attribution: Attribution; w: Writer }) {
  const [content, setContent] = useState(formal.content)
  const [type, setType] = useState<ContentType>(formal.content_type)
  const [kind, setKind] = useState<MatchKind>('labels')
  const [target, setTarget] = useState('')
  const [guardKind, setGuardKind] = useState<GuardKind>('none')
  const [guard, setGuard] = useState('')
  const [formError, setFormError] = useState('')
  const submit = (e: FormEvent) => {
    e.preventDefault()
    const match = buildMatch(kind, target)
    if (typeof match === 'string') return setFormError(match)
    if (guardKind !== 'none' && !guard.trim()) return setFormError(`Name the guard's ${guardKind === 'slo' ? 'SLO' : 'PromQL expression'}, or choose no guard.`)
    setFormError('')
    const body: Record<string, unknown> = { content, content_type: type, match }
    if (guardKind !== 'none') body.guard = { [guardKind]: guard.trim() }
    void w.run('Gray', () => sendJSON<WriteResult>('POST', itemPath(k, '/gray'), body, attributionHeaders(attribution)))
  }
  const placeholder = { labels: 'zone=eu-1, version=1.5.0', instances: 'pod-a, pod-b', percent: '10' }[kind]
  return (
    <form className="config-form" onSubmit={submit} data-testid="config-gray-form">
      <h3>Start a gray</h3>
      <p className="hint">Only the matching instances get this content until it is promoted or aborted; a guard aborts it on a breach.</p>
      <div className="row">
        <label>
          Target
          <select value={kind} onChange={(e) => setKind(e.target.value as MatchKind)} aria-label="gray target">
            <option value="labels">labels</option>
            <option value="instances">instances</option>
            <option value="percent">percent of instances</option>
          </select>
        </label>
        <label>
          {kind === 'labels' ? 'Labels (name=value, …)' : kind === 'instances' ? 'Instance ids' : 'Percent (0–100)'}
          <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder={placeholder} aria-label="gray match" />
        </label>
      </div>
      <div className="row">
        <label>
          Guard
          <select value={guardKind} onChange={(e) => setGuardKind(e.target.value as GuardKind)} aria-label="gray guard">
            <option value="none">none</option>
            <option value="slo">SLO</option>
            <option value="promql">PromQL</option>
          </select>
        </label>
        {guardKind !== 'none' && (
          <label>
            {guardKind === 'slo' ? 'SLO (service/name)' : 'Breached while this returns anything'}
            <input value={guard} onChange={(e) => setGuard(e.target.value)} aria-label="gray guard value" />
          </label>
        )}
      </div>
      <ContentTypeSelect value={type} onChange={setType} />
      <label>
        Gray content
        <textarea value={content} onChange={(e) => setContent(e.target.value)} aria-label="gray content" />
      </label>
      {formError && <span className="form-error">{formError}</span>}
      <div>
        <button type="submit" className="primary" disabled={w.busy}>
          Start gray
        </button>
      </div>
    </form>
  )
}

function ActiveGrayPanel({ k, gray, attribution, w }: { k: ItemKey; gray: ConfigVersion; attribution: Attribution; w: Writer }) {
  const step = (op: 'promote' | 'abort') => {
    void w.run(op === 'promote' ? 'Promote' : 'Abort', () =>
      sendJSON<WriteResult>('POST', itemPath(k, `/gray/${op}`), undefined, attributionHeaders(attribution)),
    )
  }
  return (
    <div className="config-gray" data-testid="config-gray">
      <h3>Active gray: version {gray.version}</h3>
      <dl className="facts">
        <dt>Target</dt>
        <dd data-testid="config-gray-match">{matchText(gray.match)}</dd>
        <dt>Guard</dt>
        <dd className="mono">{guardText(gray.guard) || <span className="muted">none</span>}</dd>
        <dt>Started</dt>
        <dd>
          {when(gray.time)} by {gray.author || <span className="muted">unknown</span>}
          {gray.message && <span>: {gray.message}</span>}
        </dd>
        <dt>MD5</dt>
        <dd className="mono">{gray.md5}</dd>
      </dl>
      <pre className="config-content" data-testid="config-gray-content">
        {gray.content}
      </pre>
      <div className="actions">
        <button type="button" className="primary" disabled={w.busy} onClick={() => step('promote')}>
          Promote
        </button>
        <button type="button" className="danger" disabled={w.busy} onClick={() => step('abort')}>
          Abort
        </button>
      </div>
    </div>
  )
}

function History({ k, versions, attribution, w }: { k: ItemKey; versions: ConfigVersion[]; attribution: Attribution; w: Writer }) {
  const rollback = (v: number) =>
    void w.run(`Rollback to version ${v}`, () => sendJSON<WriteResult>('POST', itemPath(k, `/rollback?version=${v}`), undefined, attributionHeaders(attribution)))
  return (
    <>
      <h2>History</h2>
      <table className="grid" data-testid="config-history">
        <thead>
          <tr>
            <th className="num">Version</th>
            <th>State</th>
            <th>Action</th>
            <th>Author</th>
            <th>Message</th>
            <th>Time</th>
            <th>MD5</th>
            <th>Content</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.version} data-testid="config-version" data-version={v.version}>
              <td className="num">{v.version}</td>
              <td>
                {v.formal && <Badge kind="formal">formal</Badge>}
                {v.active_gray && <Badge kind="gray">active gray</Badge>}
                {v.gray && !v.active_gray && <span className="muted">gray</span>}
              </td>
              <td>
                {v.action}
                {v.from ? <span className="muted"> of {v.from}</span> : null}
                {v.match && <div className="muted small">{matchText(v.match)}</div>}
              </td>
              <td>
                {v.author}
                {v.principal && v.principal !== v.author && <div className="muted small">as {v.principal}</div>}
              </td>
              <td className="pre">{v.message}</td>
              <td className="nowrap">{when(v.time)}</td>
              <td className="mono small">{v.md5}</td>
              <td>
                <details className="version-content">
                  <summary>{v.content_type}</summary>
                  <pre className="config-content">{v.content}</pre>
                </details>
              </td>
              <td>
                {/* A gray version was never everyone's: it comes back by
                    a new gray, not by a rollback. */}
                {!v.formal && !v.gray && (
                  <button type="button" disabled={w.busy} onClick={() => rollback(v.version)} aria-label={`roll back to version ${v.version}`}>
                    Roll back to {v.version}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  )
}

function ItemDetail({ k, attribution, onChanged }: { k: ItemKey; attribution: Attribution; onChanged: () => void }) {
  const hist = useFetch<{ data: ConfigVersion[] }>(itemPath(k, '/history'))
  const versions = hist.data?.data ?? []
  const formal = versions.find((v) => v.formal)
  const gray = versions.find((v) => v.active_gray)
  const w = useWrite(() => {
    hist.reload()
    onChanged()
  })
  return (
    <div className="config-item" data-testid="config-item">
      <h2>{itemName(k)}</h2>
      <Outcome outcome={w.outcome} />
      {hist.loading && !hist.data && <Loading what="the item" />}
      {hist.error && <ErrorBox error={hist.error} what="the item" />}
      {formal && (
        <>
          <dl className="facts" data-testid="config-formal">
            <dt>Formal version</dt>
            <dd data-testid="config-formal-version">{formal.version}</dd>
            <dt>Content type</dt>
            <dd>{formal.content_type}</dd>
            <dt>MD5</dt>
            <dd className="mono">{formal.md5}</dd>
            <dt>Published</dt>
            <dd>
              {when(formal.time)} by {formal.author || <span className="muted">unknown</span>} ({formal.action}
              {formal.from ? ` of ${formal.from}` : ''})
            </dd>
            {formal.message && (
              <>
                <dt>Message</dt>
                <dd className="pre">{formal.message}</dd>
              </>
            )}
          </dl>
          <pre className="config-content" data-testid="config-formal-content">
            {formal.content}
          </pre>
          {gray && <ActiveGrayPanel key={gray.version} k={k} gray={gray} attribution={attribution} w={w} />}
          <div className="config-forms">
            {/* keyed by the formal version: a new one refills the forms */}
            <PutForm key={`put-${formal.version}`} k={k} formal={formal} attribution={attribution} w={w} />
            {!gray && <GrayForm key={`gray-${formal.version}`} k={k} formal={formal} attribution={attribution} w={w} />}
          </div>
          <History k={k} versions={versions} attribution={attribution} w={w} />
        </>
      )}
    </div>
  )
}

export default function Config() {
  const q = useQuery()
  const setQuery = useSetQuery()
  const items = useFetch<{ data: ConfigSummary[] }>('/api/v1/config')
  const [attribution, setAttribution] = useState<Attribution>({ author: '', message: '' })
  const selected = parseItem(q.get('item'))
  // After a write: the list again, and the message was that write's.
  const written = () => {
    items.reload()
    setAttribution((a) => ({ ...a, message: '' }))
  }
  const list = items.data?.data ?? []
  return (
    <section>
      <h1>Configuration</h1>
      <p className="hint">
        Items of the configuration centre, the versions services read from /api/v1/config and watch. Writes need the config role when
        authentication is on.
      </p>
      {items.loading && !items.data && <Loading what="the items" />}
      {items.error && <ErrorBox error={items.error} what="the items" />}
      {items.data && list.length === 0 && <Empty>No configuration items yet — put one below or with `vigil config put`.</Empty>}
      {list.length > 0 && <ItemsTable items={list} selected={selected ? itemName(selected) : null} />}
      <div className="filters" data-testid="config-attribution">
        <label>
          Author (default: your credential)
          <input value={attribution.author} onChange={(e) => setAttribution({ ...attribution, author: e.target.value })} aria-label="author" />
        </label>
        <label className="wide">
          Message for the next write
          <input value={attribution.message} onChange={(e) => setAttribution({ ...attribution, message: e.target.value })} aria-label="message" />
        </label>
      </div>
      {selected && (
        <div className="actions">
          <button type="button" className="linkish" onClick={() => setQuery({ item: null })}>
            New item
          </button>
        </div>
      )}
      {selected ? (
        <ItemDetail key={itemName(selected)} k={selected} attribution={attribution} onChanged={written} />
      ) : (
        <NewItem
          attribution={attribution}
          onDone={(k) => {
            written()
            setQuery({ item: itemName(k) })
          }}
        />
      )}
    </section>
  )
}
