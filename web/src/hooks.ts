import { useEffect, useState } from 'react'
import { getJSON } from './api'

export interface Fetched<T> {
  data: T | undefined
  error: Error | undefined
  loading: boolean
}

// useFetch loads url (null: nothing) and reloads whenever it changes; a newer
// request aborts the older one.
export function useFetch<T>(url: string | null): Fetched<T> {
  const [state, setState] = useState<Fetched<T> & { url: string | null }>({
    data: undefined,
    error: undefined,
    loading: url !== null,
    url,
  })
  useEffect(() => {
    if (url === null) {
      setState({ data: undefined, error: undefined, loading: false, url })
      return
    }
    const ctl = new AbortController()
    setState((s) => ({ ...s, loading: true, error: undefined, url }))
    getJSON<T>(url, ctl.signal).then(
      (data) => setState({ data, error: undefined, loading: false, url }),
      (error: Error) => {
        if (ctl.signal.aborted) return
        setState({ data: undefined, error, loading: false, url })
      },
    )
    return () => ctl.abort()
  }, [url])
  return state
}
