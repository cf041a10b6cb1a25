import { lazy, Suspense, useEffect, useState, type ReactNode } from 'react'
import { Link, Route, Switch, useLocation } from 'wouter'
import { newerReport, onDoctorReport, type DoctorReport } from './api'
import { Loading } from './components/States'
import { TimePicker } from './components/TimePicker'
import { useEvery, useFetch } from './hooks'
import { Services } from './pages/Services'
import { TimeProvider, timeParams, useTimeRange } from './time'
import { href, safeDecode } from './url'

// Pages other than the home page load on demand, so the first load only
// fetches React, uPlot and the services overview.
const ServiceDetail = lazy(() => import('./pages/ServiceDetail'))
const TraceSearch = lazy(() => import('./pages/TraceSearch'))
const TraceView = lazy(() => import('./pages/TraceView'))
const Logs = lazy(() => import('./pages/Logs'))
const Profiles = lazy(() => import('./pages/Profiles'))
const MetricsExplorer = lazy(() => import('./pages/MetricsExplorer'))
const ServiceMap = lazy(() => import('./pages/ServiceMap'))
const Alerts = lazy(() => import('./pages/Alerts'))
const Silences = lazy(() => import('./pages/Silences'))
const SLOs = lazy(() => import('./pages/SLOs'))
const Doctor = lazy(() => import('./pages/Doctor'))
const Cluster = lazy(() => import('./pages/Cluster'))
const Config = lazy(() => import('./pages/Config'))

function NavLink({ to, children, match }: { to: string; children: ReactNode; match: (p: string) => boolean }) {
  const [location] = useLocation()
  const t = useTimeRange()
  const active = match(location)
  return (
    <Link href={href(to, timeParams(t))} className={active ? 'active' : ''} aria-current={active ? 'page' : undefined}>
      {children}
    </Link>
  )
}

// DoctorCount shows how many critical and warning findings the doctor's last
// run has, so a broken seam is visible from every page. It reads the report
// the doctor keeps, and follows the doctor page's "Run now".
function DoctorCount() {
  const last = useFetch<DoctorReport>('/api/doctor')
  const [published, setPublished] = useState<DoctorReport>()
  useEffect(() => onDoctorReport(setPublished), [])
  useEvery(60_000, last.reload)
  const report = newerReport(last.data, published)
  const critical = report?.findings.filter((f) => f.severity === 'critical').length ?? 0
  const warning = report?.findings.filter((f) => f.severity === 'warning').length ?? 0
  if (critical + warning === 0) return null
  return (
    <>
      {' '}
      <span
        className={`nav-count ${critical ? 'critical' : 'warning'}`}
        title={`${critical} critical, ${warning} warning findings`}
        data-testid="doctor-count"
      >
        {critical + warning}
      </span>
    </>
  )
}

function Shell() {
  return (
    <>
      <header className="topbar">
        <Link href="/" className="brand">
          vigil
        </Link>
        <nav>
          <NavLink to="/" match={(p) => p === '/' || p.startsWith('/services')}>
            Services
          </NavLink>
          <NavLink to="/traces" match={(p) => p.startsWith('/traces')}>
            Traces
          </NavLink>
          <NavLink to="/logs" match={(p) => p.startsWith('/logs')}>
            Logs
          </NavLink>
          <NavLink to="/profiles" match={(p) => p.startsWith('/profiles')}>
            Profiles
          </NavLink>
          <NavLink to="/explore" match={(p) => p.startsWith('/explore')}>
            Metrics
          </NavLink>
          <NavLink to="/map" match={(p) => p.startsWith('/map')}>
            Service map
          </NavLink>
          <NavLink to="/alerts" match={(p) => p.startsWith('/alerts')}>
            Alerts
          </NavLink>
          <NavLink to="/silences" match={(p) => p.startsWith('/silences')}>
            Silences
          </NavLink>
          <NavLink to="/slos" match={(p) => p.startsWith('/slos')}>
            SLOs
          </NavLink>
          <NavLink to="/config" match={(p) => p.startsWith('/config')}>
            Config
          </NavLink>
          <NavLink to="/doctor" match={(p) => p.startsWith('/doctor')}>
            Doctor
            <DoctorCount />
          </NavLink>
          <NavLink to="/cluster" match={(p) => p.startsWith('/cluster')}>
            Cluster
          </NavLink>
        </nav>
        <TimePicker />
      </header>
      <main>
        <Suspense fallback={<Loading />}>
          <Switch>
            <Route path="/" component={Services} />
            <Route path="/services/:name">{(p) => <ServiceDetail name={safeDecode(p.name)} />}</Route>
            <Route path="/traces" component={TraceSearch} />
            <Route path="/traces/:id">{(p) => <TraceView id={p.id} />}</Route>
            <Route path="/logs" component={Logs} />
            <Route path="/profiles" component={Profiles} />
            <Route path="/explore" component={MetricsExplorer} />
            <Route path="/map" component={ServiceMap} />
            <Route path="/alerts" component={Alerts} />
            <Route path="/silences" component={Silences} />
            <Route path="/slos" component={SLOs} />
            <Route path="/doctor" component={Doctor} />
            <Route path="/cluster" component={Cluster} />
            <Route path="/config" component={Config} />
            <Route>
              <div className="state empty">
                No such page. <Link href="/">Go to the services overview</Link>.
              </div>
            </Route>
          </Switch>
        </Suspense>
      </main>
    </>
  )
}

export function App() {
  return (
    <TimeProvider>
      <Shell />
    </TimeProvider>
  )
}
