// Change events (/api/v1/changes) as markers on the charts: deploys, config
// writes and gray steps, each named with its service or item, version and
// author. TimeChart draws the markers; ChangeList names them below a chart.
import { apiURL, type Change, type PromInstant } from './api'
import { changeLabel, forService, KIND_NAMES, markerKind } from './changeEvents'
import { fmtTime, promString } from './format'
import { useFetch } from './hooks'

export { toMarker, type ChangeMarker } from './changeEvents'

// useChanges lists the change events between start and end (unix seconds).
// With a service: its deploys, and the config changes of the items its
// instances apply (vigil_config_applied_info, by job or service_name, over
// the range) or named after it (a namespace, group or key equal to its
// name). A list that cannot be read draws no markers.
export function useChanges(start: number, end: number, service?: string): Change[] {
  const all = useFetch<{ data: Change[] }>(apiURL('/api/v1/changes', { start: start.toFixed(3), end: end.toFixed(3) }))
  const range = `${Math.max(60, Math.ceil(end - start))}s`
  const applied = useFetch<{ data: PromInstant }>(
    service
      ? apiURL('/api/v1/query', {
          query:
            `group by (item) (last_over_time(vigil_config_applied_info{job=${promString(service)}}[${range}])` +
            ` or last_over_time(vigil_config_applied_info{service_name=${promString(service)}}[${range}]))`,
          time: end.toFixed(3),
        })
      : null,
  )
  const list = all.data?.data ?? []
  if (!service) return list
  const items = new Set<string>()
  const r = applied.data?.data
  if (r?.resultType === 'vector') r.result.forEach((s) => s.metric.item && items.add(s.metric.item))
  return forService(list, service, items)
}

// ChangeList names the changes a chart marks, newest first.
export function ChangeList({ changes }: { changes: Change[] }) {
  if (!changes.length) return null
  const sorted = [...changes].sort((a, b) => Date.parse(b.time) - Date.parse(a.time))
  return (
    <div className="change-list" data-testid="change-list">
      <h3>Changes in this range (the chart's vertical lines)</h3>
      <ul>
        {sorted.map((c, i) => {
          const kind = markerKind(c)
          return (
            <li key={i} data-testid="change-list-item">
              <span className={`change-kind ${kind}`}>{KIND_NAMES[kind]}</span>
              <span className="muted mono">{fmtTime(new Date(c.time)).slice(0, 19)}</span> {changeLabel(c)}
            </li>
          )
        })}
      </ul>
    </div>
  )
}
