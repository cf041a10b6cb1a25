import { useMemo, useState } from 'react'

// ProfileNode is one node of /api/v1/profiles/flamegraph's call tree.
export interface ProfileNode {
  name: string
  self: number
  total: number
  children?: ProfileNode[]
}

interface Bar {
  node: ProfileNode
  depth: number
  left: number // fraction of the focused node's total
  width: number
  path: string // the names from the root, for focusing and keys
}

// Nodes narrower than this fraction of the view are not drawn; their
// parent's width still counts them.
const MIN_WIDTH = 0.002

// layout lays the tree under root out as bars, root first, each child
// placed after its elder siblings (the API orders them by total).
function layout(root: ProfileNode, rootPath: string): Bar[] {
  const bars: Bar[] = []
  const total = root.total || 1
  const walk = (n: ProfileNode, depth: number, left: number, path: string) => {
    const width = n.total / total
    if (width < MIN_WIDTH) return
    bars.push({ node: n, depth, left, width, path })
    let x = left
    for (const [i, c] of (n.children ?? []).entries()) {
      walk(c, depth + 1, x, `${path}/${i}`)
      x += c.total / total
    }
  }
  walk(root, 0, 0, rootPath)
  return bars
}

// find follows a path of child indexes ("0/2/1") from the root.
function find(root: ProfileNode, path: string): ProfileNode | undefined {
  let n: ProfileNode | undefined = root
  for (const i of path.split('/').slice(1)) n = n?.children?.[Number(i)]
  return n
}

// hue gives a function a stable warm colour from its package, so the frames
// of one package look alike across the graph.
function hue(name: string): number {
  const pkg = name.replace(/\.[^./]*$/, '')
  let h = 0
  for (let i = 0; i < pkg.length; i++) h = (h * 31 + pkg.charCodeAt(i)) >>> 0
  return h % 6
}

// FlameGraph draws a call tree as an icicle graph (root on top, callees
// below), in DOM elements: every name is React text, and positions are set
// through the style property, which the UI's CSP (style-src 'self') allows.
// Clicking a frame (or Enter on it) zooms into it; clicking the top frame
// zooms out a level, "Reset zoom" all the way.
export function FlameGraph({ root, format }: { root: ProfileNode; format: (v: number) => string }) {
  const [focus, setFocus] = useState('0')
  const [hover, setHover] = useState<Bar | null>(null)
  const focused = find(root, focus) ?? root
  const focusPath = find(root, focus) ? focus : '0'
  const bars = useMemo(() => layout(focused, focusPath), [focused, focusPath])
  const depth = bars.reduce((d, b) => Math.max(d, b.depth), 0) + 1
  const whole = root.total || 1
  // A frame zooms in; the focused frame (the top one) zooms out a level.
  const zoom = (b: Bar) => setFocus(b.path === focusPath ? b.path.replace(/\/\d+$/, '') || '0' : b.path)
  return (
    <div className="flamegraph" data-testid="flamegraph">
      <div className="fg-status">
        {hover ? (
          <span data-testid="fg-hover">
            <span className="mono">{hover.node.name}</span>: {format(hover.node.total)} ({((hover.node.total / whole) * 100).toFixed(2)}%), self{' '}
            {format(hover.node.self)}
          </span>
        ) : (
          <span className="muted">Hover a frame for its numbers; click to zoom into it.</span>
        )}
        {focusPath !== '0' && (
          <button type="button" onClick={() => setFocus('0')}>
            Reset zoom
          </button>
        )}
      </div>
      <div className="fg-canvas" style={{ height: `${depth * 20}px` }} onMouseLeave={() => setHover(null)}>
        {bars.map((b) => (
          <div
            key={b.path}
            role="button"
            tabIndex={0}
            aria-label={`${b.node.name}: ${format(b.node.total)}`}
            data-testid="fg-frame"
            data-name={b.node.name}
            className={`fg-frame fg-h${hue(b.node.name)}`}
            style={{ left: `${b.left * 100}%`, width: `${b.width * 100}%`, top: `${b.depth * 20}px` }}
            title={`${b.node.name}: ${format(b.node.total)}`}
            onMouseEnter={() => setHover(b)}
            onFocus={() => setHover(b)}
            onClick={() => zoom(b)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' || e.key === ' ') {
                e.preventDefault()
                zoom(b)
              }
            }}
          >
            {b.node.name}
          </div>
        ))}
      </div>
    </div>
  )
}

// DiffNode is one node of /api/v1/profiles/diff's merged call tree: the
// frame's total in the baseline and the comparison, and each as a share of
// its own range's whole.
export interface DiffNode {
  name: string
  baseline: number
  comparison: number
  baseline_share: number
  comparison_share: number
  children?: DiffNode[]
}

interface DiffBar {
  node: DiffNode
  depth: number
  left: number
  width: number
  path: string
}

// A diff frame is as wide as the mean of its two shares, so frames that
// only one range has still show and siblings still add up to the parent.
const diffWeight = (n: DiffNode) => (n.baseline_share + n.comparison_share) / 2

function layoutDiff(root: DiffNode, rootPath: string): DiffBar[] {
  const bars: DiffBar[] = []
  const total = diffWeight(root) || 1
  const walk = (n: DiffNode, depth: number, left: number, path: string) => {
    const width = diffWeight(n) / total
    if (width < MIN_WIDTH) return
    bars.push({ node: n, depth, left, width, path })
    let x = left
    for (const [i, c] of (n.children ?? []).entries()) {
      walk(c, depth + 1, x, `${path}/${i}`)
      x += diffWeight(c) / total
    }
  }
  walk(root, 0, 0, rootPath)
  return bars
}

function findDiff(root: DiffNode, path: string): DiffNode | undefined {
  let n: DiffNode | undefined = root
  for (const i of path.split('/').slice(1)) n = n?.children?.[Number(i)]
  return n
}

// Changes of share smaller than this (half a percentage point) are drawn
// as unchanged.
const SAME = 0.005

// changeClass names a frame's colour: fg-grew (red) or fg-shrank (blue),
// darker the larger the change in share, or fg-same.
export function changeClass(change: number): string {
  const a = Math.abs(change)
  if (a < SAME) return 'fg-same'
  const level = a < 0.05 ? 1 : a < 0.2 ? 2 : 3
  return `${change > 0 ? 'fg-grew' : 'fg-shrank'} ${change > 0 ? 'fg-grew' : 'fg-shrank'}-${level}`
}

const pct = (s: number) => `${(s * 100).toFixed(2)}%`

// fmtChange gives a change of share in percentage points, with its sign.
export function fmtChange(change: number): string {
  return `${change > 0 ? '+' : change < 0 ? '−' : '±'}${(Math.abs(change) * 100).toFixed(2)} pts`
}

// DiffFlameGraph draws the merged call tree of two ranges like FlameGraph,
// each frame coloured by how its share of the whole changed: red grew,
// blue shrank. Hover or focus shows both values and shares.
export function DiffFlameGraph({ root, format }: { root: DiffNode; format: (v: number) => string }) {
  const [focus, setFocus] = useState('0')
  const [hover, setHover] = useState<DiffBar | null>(null)
  const focused = findDiff(root, focus) ?? root
  const focusPath = findDiff(root, focus) ? focus : '0'
  const bars = useMemo(() => layoutDiff(focused, focusPath), [focused, focusPath])
  const depth = bars.reduce((d, b) => Math.max(d, b.depth), 0) + 1
  const zoom = (b: DiffBar) => setFocus(b.path === focusPath ? b.path.replace(/\/\d+$/, '') || '0' : b.path)
  const change = (n: DiffNode) => n.comparison_share - n.baseline_share
  const describe = (n: DiffNode) =>
    `${n.name}: ${pct(n.baseline_share)} → ${pct(n.comparison_share)} (${fmtChange(change(n))}); ${format(n.baseline)} → ${format(n.comparison)}`
  return (
    <div className="flamegraph" data-testid="diff-flamegraph">
      <div className="fg-status">
        {hover ? (
          <span data-testid="fg-diff-hover">
            <span className="mono">{hover.node.name}</span>: {pct(hover.node.baseline_share)} → {pct(hover.node.comparison_share)} of the whole (
            {fmtChange(change(hover.node))}); {format(hover.node.baseline)} → {format(hover.node.comparison)}
          </span>
        ) : (
          <span className="muted">
            <span className="fg-legend fg-grew-3">grew</span> <span className="fg-legend fg-shrank-3">shrank</span> in share of the whole. Hover a
            frame for its numbers; click to zoom into it.
          </span>
        )}
        {focusPath !== '0' && (
          <button type="button" onClick={() => setFocus('0')}>
            Reset zoom
          </button>
        )}
      </div>
      <div className="fg-canvas" style={{ height: `${depth * 20}px` }} onMouseLeave={() => setHover(null)}>
        {bars.map((b) => (
          <div
            key={b.path}
            role="button"
            tabIndex={0}
            aria-label={describe(b.node)}
            data-testid="fg-frame"
            data-name={b.node.name}
            className={`fg-frame ${changeClass(change(b.node))}`}
            style={{ left: `${b.left * 100}%`, width: `${b.width * 100}%`, top: `${b.depth * 20}px` }}
            title={describe(b.node)}
            onMouseEnter={() => setHover(b)}
            onFocus={() => setHover(b)}
            onClick={() => zoom(b)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' || e.key === ' ') {
                e.preventDefault()
                zoom(b)
              }
            }}
          >
            {b.node.name}
          </div>
        ))}
      </div>
    </div>
  )
}
