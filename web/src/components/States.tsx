import type { ReactNode } from 'react'

export function Loading({ what }: { what?: string }) {
  return (
    <div className="state loading" role="status">
      Loading{what ? ` ${what}` : ''}…
    </div>
  )
}

export function ErrorBox({ error, what }: { error: Error; what?: string }) {
  return (
    <div className="state error" role="alert">
      {what ? `Could not load ${what}: ` : ''}
      {error.message}
    </div>
  )
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>
}
