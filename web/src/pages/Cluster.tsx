// Cluster: the consensus cluster (GET /api/v1/cluster): who leads, in
// which term, and each member as it reports itself. A node
// without cluster: in vigil.yaml answers 404, shown as a note, not an error.
import { ApiError, type ClusterMember, type ClusterStatus } from '../api'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtDurationMs, fmtTime } from '../format'
import { useEvery, useFetch, useOnRefresh } from '../hooks'

const noop = () => {}

const index = (i: number) => (i > 0 ? String(i) : '–')

function LastContact({ at, now }: { at: string | null; now: number }) {
  if (!at) return <span className="muted">–</span>
  const t = Date.parse(at)
  return <span title={fmtTime(t)}>{fmtDurationMs(Math.max(0, now - t))} ago</span>
}

function MemberRow({ m, now }: { m: ClusterMember; now: number }) {
  return (
    <tr data-testid="cluster-member" data-id={m.id} data-state={m.state}>
      <td className="name">{m.id}</td>
      <td>
        <code>{m.address}</code>
      </td>
      <td>
        <span
          className={`state-badge ${m.state === 'leader' ? 'active' : m.state === 'unreachable' ? 'firing' : m.state === 'unknown' ? 'none' : ''}`}
        >
          {m.state}
        </span>
      </td>
      <td>{m.voter ? 'yes' : 'no'}</td>
      <td className="num">{index(m.commit_index)}</td>
      <td className="num">{index(m.applied_index)}</td>
      <td>
        <LastContact at={m.last_contact} now={now} />
      </td>
    </tr>
  )
}

export default function Cluster() {
  const cluster = useFetch<ClusterStatus>('/api/v1/cluster')
  const singleNode = cluster.error instanceof ApiError && cluster.error.status === 404
  // A single node stays one until it restarts: no point asking every 5 s.
  useEvery(5_000, singleNode ? noop : cluster.reload)
  useOnRefresh(cluster.reload)
  const data = cluster.data?.data
  const now = Date.now()

  return (
    <section>
      <h1>Cluster</h1>
      <p className="hint">
        The consensus cluster: the leader and term as this node knows them, and each member's state, commit and applied indexes and
        last contact with the leader as that member reports them (<em>unreachable</em>: it did not answer within a second).
      </p>
      {cluster.loading && !data && !cluster.error && <Loading what="the cluster" />}
      {singleNode && (
        <Empty>
          <span data-testid="cluster-single-node">
            vigil runs single-node: there is no leader or term to show. Add a <code>cluster:</code> section to vigil.yaml to run several
            nodes (see docs/cluster.md).
          </span>
        </Empty>
      )}
      {cluster.error && !singleNode && <ErrorBox error={cluster.error} what="the cluster" />}
      {data && (
        <>
          <dl className="cluster-summary" data-testid="cluster-summary">
            <dt>Leader</dt>
            <dd data-testid="cluster-leader">{data.leader || <span className="muted">none known (an election, or no quorum)</span>}</dd>
            <dt>Term</dt>
            <dd data-testid="cluster-term">{data.term}</dd>
            <dt>Members</dt>
            <dd>{data.members.length}</dd>
          </dl>
          <table className="grid cluster" data-testid="cluster-members">
            <thead>
              <tr>
                <th>Node</th>
                <th>Raft address</th>
                <th>State</th>
                <th>Voter</th>
                <th className="num">Commit index</th>
                <th className="num">Applied index</th>
                <th>Last contact</th>
              </tr>
            </thead>
            <tbody>
              {data.members.map((m) => (
                <MemberRow key={m.id} m={m} now={now} />
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}
