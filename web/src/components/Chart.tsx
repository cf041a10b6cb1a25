// React wrappers around uPlot: a time-series line chart, stacked bars and
// sparklines. uPlot renders legends and axes as text nodes, so series labels
// taken from data (PromQL labels, service names) are never parsed as HTML.
import { useEffect, useRef } from 'react'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import type { ChangeMarker } from '../changeEvents'
import { fmtAxisTimes, fmtNumber, fmtTime } from '../format'

export const PALETTE = [
  '#1f6feb', '#e36209', '#2da44e', '#cf222e', '#8250df', '#bf8700', '#0598bc', '#d63384',
  '#57606a', '#6f42c1', '#1a7f37', '#9a6700',
]

interface BaseProps {
  data: uPlot.AlignedData
  height: number
  // Builds the options for a given width; called when data change.
  options: (width: number) => Omit<uPlot.Options, 'width' | 'height'>
  // Drag-selecting a span of the x axis reports it (unix seconds).
  onSelect?: (min: number, max: number) => void
  className?: string
  testId?: string
  // Change events drawn as vertical lines over the plot.
  markers?: ChangeMarker[]
}

// placeMarkers draws each marker inside the x range as an element over the
// plot (a vertical line with the change's name as its tooltip and
// accessible name), replacing those drawn before. Elements rather than
// canvas strokes, so that the names are text (never HTML) and the markers
// can be hovered and found.
function placeMarkers(u: uPlot, markers: ChangeMarker[]) {
  let layer = u.over.querySelector<HTMLDivElement>(':scope > .change-markers')
  if (!layer) {
    layer = document.createElement('div')
    layer.className = 'change-markers'
    u.over.appendChild(layer)
  }
  const width = u.over.clientWidth
  const els: HTMLElement[] = []
  for (const m of markers) {
    const x = u.valToPos(m.time, 'x')
    if (!(x >= 0 && x <= width)) continue
    const el = document.createElement('div')
    el.className = `change-marker ${m.kind}`
    el.style.left = `${x}px`
    el.title = m.label
    el.setAttribute('aria-label', m.label)
    el.setAttribute('role', 'img')
    el.dataset.testid = 'change-marker'
    el.dataset.kind = m.kind
    els.push(el)
  }
  layer.replaceChildren(...els)
}

export function UPlot({ data, height, options, onSelect, className, testId, markers }: BaseProps) {
  const ref = useRef<HTMLDivElement>(null)
  const selectRef = useRef(onSelect)
  selectRef.current = onSelect
  const markersRef = useRef(markers)
  markersRef.current = markers
  const plotRef = useRef<uPlot | null>(null)
  useEffect(() => {
    const el = ref.current
    if (!el) return
    const width = Math.max(el.clientWidth, 50)
    const opts = options(width) as uPlot.Options
    opts.width = width
    opts.height = height
    if (selectRef.current) {
      opts.cursor = { ...opts.cursor, drag: { x: true, y: false, setScale: false } }
      opts.hooks = {
        ...opts.hooks,
        setSelect: [
          (u: uPlot) => {
            if (u.select.width < 4) return
            const min = u.posToVal(u.select.left, 'x')
            const max = u.posToVal(u.select.left + u.select.width, 'x')
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false)
            selectRef.current?.(min, max)
          },
        ],
      }
    }
    // Markers follow every redraw (a resize, a new scale).
    opts.plugins = [...(opts.plugins ?? []), { hooks: { draw: [(u: uPlot) => placeMarkers(u, markersRef.current ?? [])] } }]
    const plot = new uPlot(opts, data, el)
    plotRef.current = plot
    const ro = new ResizeObserver(() => {
      const w = Math.max(el.clientWidth, 50)
      if (w !== plot.width) plot.setSize({ width: w, height })
    })
    ro.observe(el)
    return () => {
      ro.disconnect()
      plotRef.current = null
      plot.destroy()
    }
    // options is rebuilt by callers on every render; data identity drives updates.
  }, [data, height])
  // Markers that arrive after the data are drawn without rebuilding the plot.
  useEffect(() => {
    if (plotRef.current) placeMarkers(plotRef.current, markers ?? [])
  }, [markers])
  return <div ref={ref} className={className ?? 'chart'} data-testid={testId} />
}

// The x axis in 24-hour time (uPlot's default is 12-hour with am/pm).
const timeAxis: uPlot.Axis = { values: (_u, ticks, _ai, _space, incr) => fmtAxisTimes(ticks, incr) }

// lastIndex is the index of the last non-null value, or null.
function lastIndex(values: (number | null | undefined)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return i
  return null
}

// The legend's time: the hovered instant in 24-hour time, and while the
// cursor is elsewhere what the values next to it are (uPlot's default is
// "Time: --").
function timeSeries(restLabel: string): uPlot.Series {
  return {
    label: 'Time',
    value: (_u, v, _si, idx) => (idx == null || v == null ? restLabel : fmtTime(v * 1000).slice(0, 19)),
  }
}

export interface LineSeries {
  label: string
  values: (number | null)[]
  // Optional fixed colour and dash pattern (dashed lines, e.g. thresholds,
  // are drawn without points).
  color?: string
  dash?: number[]
}

// TimeChart draws series over shared timestamps (unix seconds).
export function TimeChart(props: {
  times: number[]
  series: LineSeries[]
  // The x range to show (unix seconds), rather than the data's extent.
  xRange?: [number, number]
  height?: number
  yFormat?: (v: number) => string
  onSelect?: (min: number, max: number) => void
  testId?: string
  // Change events to draw as vertical lines (changes.tsx).
  markers?: ChangeMarker[]
  // The y range from the data's; by default uPlot's.
  yRange?: uPlot.Range.Function
}) {
  const { times, series, yFormat, xRange } = props
  const data = [times, ...series.map((s) => s.values)] as uPlot.AlignedData
  return (
    <UPlot
      data={data}
      height={props.height ?? 280}
      onSelect={props.onSelect}
      testId={props.testId}
      markers={props.markers}
      options={() => ({
        scales: {
          x: xRange ? { time: true, auto: false, range: () => xRange } : { time: true },
          ...(props.yRange ? { y: { range: props.yRange } } : {}),
        },
        axes: [
          timeAxis,
          { size: 70, values: yFormat ? (_u, vals) => vals.map((v) => (v == null ? '' : yFormat(v))) : undefined },
        ],
        series: [
          timeSeries('latest values (hover for others)'),
          ...series.map((s, i) => {
            const fmt = yFormat ?? fmtNumber
            const last = lastIndex(s.values)
            return {
              label: s.label,
              stroke: s.color ?? PALETTE[i % PALETTE.length],
              width: 1.5,
              dash: s.dash,
              points: s.dash ? { show: false } : undefined,
              spanGaps: false,
              // Away from the chart, each series' latest value.
              value: (_u: uPlot, v: number | null, _si: number, idx: number | null) => {
                const x = idx == null ? (last == null ? null : s.values[last]) : v
                return x == null ? '–' : fmt(x)
              },
            }
          }),
        ],
        legend: { show: true, live: true },
      })}
    />
  )
}

// StackedBars draws counts per bucket stacked by category (e.g. severity).
export function StackedBars(props: {
  times: number[]
  stacks: { label: string; values: number[]; color: string }[]
  height?: number
  onSelect?: (min: number, max: number) => void
  testId?: string
}) {
  const { times, stacks } = props
  // Cumulative sums, drawn from the tallest down so each band stays visible.
  const cum: number[][] = []
  stacks.forEach((s, i) => cum.push(s.values.map((v, j) => v + (i ? cum[i - 1][j] : 0))))
  const order = stacks.map((_, i) => stacks.length - 1 - i)
  const data = [times, ...order.map((i) => cum[i])] as uPlot.AlignedData
  const bars = uPlot.paths.bars!({ size: [0.9, 40], align: 1 })
  return (
    <UPlot
      data={data}
      height={props.height ?? 140}
      onSelect={props.onSelect}
      testId={props.testId}
      options={() => ({
        scales: { x: { time: true } },
        axes: [timeAxis, { size: 50 }],
        series: [
          timeSeries('totals of the range (hover for a bar)'),
          ...order.map((i) => ({
            label: stacks[i].label,
            fill: stacks[i].color,
            stroke: stacks[i].color,
            paths: bars,
            points: { show: false },
            // The legend shows the band's own count, not the running sum.
            // Away from the chart, the band's total over the range.
            value: (_u: uPlot, _v: number | null, _si: number, idx: number | null) =>
              idx == null ? String(stacks[i].values.reduce((a, b) => a + b, 0)) : String(stacks[i].values[idx] ?? 0),
          })),
        ],
        legend: { show: true, live: true },
      })}
    />
  )
}

// Sparkline is a tiny unlabelled line.
export function Sparkline({ points, color, testId }: { points: [number, number | null][] | undefined; color?: string; testId?: string }) {
  if (!points || points.length < 2) return <span className="muted">–</span>
  const data = [points.map((p) => p[0]), points.map((p) => p[1])] as uPlot.AlignedData
  return (
    <UPlot
      className="sparkline"
      data={data}
      height={28}
      testId={testId}
      options={() => ({
        legend: { show: false },
        cursor: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        scales: { x: { time: false }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max : 1] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: color ?? PALETTE[0], width: 1.25, fill: (color ?? PALETTE[0]) + '22', points: { show: false } }],
        padding: [2, 0, 2, 0],
      })}
    />
  )
}
