import dagre from '@dagrejs/dagre'
import { useMemo } from 'react'
import { useLocation } from 'wouter'
import { apiURL, type ServiceMap as ServiceMapData } from '../api'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtPct, fmtRate } from '../format'
import { useFetch } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { href } from '../url'
import { RateCoverage, secs } from './Services'

const NODE_W = 180
const NODE_H = 58
// An edge label's box; dagre keeps this much room free for it.
const LABEL_W = 100
const LABEL_H = 34

interface Layout {
  width: number
  height: number
  nodes: { id: string; x: number; y: number; rate?: number | null; errorRatio?: number | null }[]
  edges: {
    source: string
    target: string
    rate: number | null
    errorRatio: number | null
    calls?: number
    points: { x: number; y: number }[]
    lx: number
    ly: number
  }[]
}

// layout places services left to right in call order (dagre's layered layout).
function layout(m: ServiceMapData['data']): Layout {
  const g = new dagre.graphlib.Graph({ multigraph: false })
  g.setGraph({ rankdir: 'LR', nodesep: 40, ranksep: 150, edgesep: 20, marginx: 20, marginy: 20 })
  g.setDefaultEdgeLabel(() => ({}))
  const ids = new Set(m.nodes.map((n) => n.id))
  for (const e of m.edges) ids.add(e.source).add(e.target)
  for (const id of ids) g.setNode(id, { width: NODE_W, height: NODE_H })
  for (const e of m.edges) g.setEdge(e.source, e.target, { width: LABEL_W + 30, height: LABEL_H, labelpos: 'c' })
  dagre.layout(g)
  const byID = new Map(m.nodes.map((n) => [n.id, n]))
  const graph = g.graph()
  return {
    width: graph.width ?? 400,
    height: graph.height ?? 200,
    nodes: [...ids].map((id) => ({ id, x: g.node(id).x, y: g.node(id).y, rate: byID.get(id)?.rate, errorRatio: byID.get(id)?.errorRatio })),
    edges: m.edges.map((e) => {
      const l = g.edge(e.source, e.target)
      return { ...e, points: l.points ?? [], lx: l.x ?? 0, ly: l.y ?? 0 }
    }),
  }
}

function edgeColor(errorRatio: number | null) {
  if (errorRatio === null) return '#8c959f'
  if (errorRatio >= 0.05) return '#cf222e'
  if (errorRatio > 0) return '#bf8700'
  return '#8c959f'
}

function path(points: { x: number; y: number }[]): string {
  if (!points.length) return ''
  let d = `M${points[0].x},${points[0].y}`
  // A smooth curve through dagre's control points.
  for (let i = 1; i < points.length - 1; i++) {
    const mx = (points[i].x + points[i + 1].x) / 2
    const my = (points[i].y + points[i + 1].y) / 2
    d += ` Q${points[i].x},${points[i].y} ${mx},${my}`
  }
  const last = points[points.length - 1]
  return d + ` L${last.x},${last.y}`
}

export default function ServiceMap() {
  const t = useTimeRange()
  const [, navigate] = useLocation()
  const { data, error, loading } = useFetch<ServiceMapData>(apiURL('/api/servicemap', { start: secs(t.start), end: secs(t.end) }))
  const m = data?.data
  const lay = useMemo(() => (m && (m.nodes.length || m.edges.length) ? layout(m) : null), [m])
  return (
    <section>
      <h1>Service map</h1>
      <p className="hint">Who calls whom, from client and server spans: request rate and error ratio on each edge. Click a service for its operations.</p>
      {loading && !data && <Loading what="the service map" />}
      {error && <ErrorBox error={error} what="the service map" />}
      {data && !lay && (
        <Empty>No calls between services in this range — widen the time range, or send spans from instrumented clients and servers to :4317.</Empty>
      )}
      {lay && <RateCoverage covered={m?.covered} startMs={t.start} endMs={t.end} />}
      {lay && (
        <div className="servicemap">
          <svg
            data-testid="servicemap"
            width={lay.width}
            height={lay.height}
            viewBox={`0 0 ${lay.width} ${lay.height}`}
            role="img"
            aria-label="Service map"
          >
            <defs>
              {['#8c959f', '#bf8700', '#cf222e'].map((c) => (
                <marker key={c} id={`arrow-${c.slice(1)}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                  <path d="M0,0 L10,5 L0,10 z" fill={c} />
                </marker>
              ))}
            </defs>
            {lay.edges.map((e) => {
              const c = edgeColor(e.errorRatio)
              return (
                <g key={`${e.source}->${e.target}`} className="edge" data-testid="servicemap-edge">
                  <title>
                    {`${e.source} → ${e.target}: ${fmtRate(e.rate)}, ${fmtPct(e.errorRatio)} errors${e.calls !== undefined ? `, ${e.calls} calls` : ''}`}
                  </title>
                  <path d={path(e.points)} fill="none" stroke={c} strokeWidth={1.5 + Math.min(4, Math.log10(1 + (e.rate ?? 0)) * 2)} markerEnd={`url(#arrow-${c.slice(1)})`} />
                </g>
              )
            })}
            {/* Labels after every edge, each on a box of the background
                colour: no edge, its own or another, is drawn across one. */}
            {lay.edges.map((e) => {
              const c = edgeColor(e.errorRatio)
              return (
                <g key={`${e.source}->${e.target}`} className="edge-label-box" data-testid="servicemap-edge-label">
                  <rect x={e.lx - LABEL_W / 2} y={e.ly - LABEL_H / 2} width={LABEL_W} height={LABEL_H} rx={4} />
                  <text x={e.lx} y={e.ly - 4} textAnchor="middle" className="edge-label">
                    {fmtRate(e.rate)}
                  </text>
                  <text x={e.lx} y={e.ly + 11} textAnchor="middle" className="edge-label" style={{ fill: c }}>
                    {fmtPct(e.errorRatio)} errors
                  </text>
                </g>
              )
            })}
            {lay.nodes.map((n) => (
              <g
                key={n.id}
                className="node"
                data-testid="servicemap-node"
                transform={`translate(${n.x - NODE_W / 2},${n.y - NODE_H / 2})`}
                onClick={() => navigate(href(`/services/${encodeURIComponent(n.id)}`, timeParams(t)))}
                role="link"
              >
                <rect width={NODE_W} height={NODE_H} rx={8} className={n.errorRatio && n.errorRatio > 0.01 ? 'node-err' : ''} />
                <text x={NODE_W / 2} y={23} textAnchor="middle" className="node-name">
                  {n.id.length > 24 ? n.id.slice(0, 23) + '…' : n.id}
                </text>
                <text x={NODE_W / 2} y={42} textAnchor="middle" className="node-stats">
                  {n.rate != null ? `${fmtRate(n.rate)} · ${fmtPct(n.errorRatio)} err` : ''}
                </text>
              </g>
            ))}
          </svg>
        </div>
      )}
    </section>
  )
}
