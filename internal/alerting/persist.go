package alerting

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/notify"
)

// saveSilences writes all silences to the state store.
func (am *Alertmanager) saveSilences() (int64, error) {
	return am.save(stateSilences, am.silences.Snapshot)
}

// saveNflog writes the notification log to the state store.
func (am *Alertmanager) saveNflog() (int64, error) {
	return am.save(stateNflog, am.nflog.Snapshot)
}

func (am *Alertmanager) save(name string, snapshot func(io.Writer) (int64, error)) (int64, error) {
	var size int64
	err := am.state.Save(name, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		_, err := snapshot(cw)
		size = cw.n
		return err
	})
	if err != nil {
		am.metrics.stateSaveErrors.WithLabelValues(name).Inc()
		am.logger.Error("saving alerting state", "state", name, "err", err)
	}
	return size, err
}

// nflogSaver is the notification log the pipeline writes to: after each
// entry it asks for a save, so that after a crash a group is not notified
// again before its repeat_interval. Saves are coalesced by nflogSaveLoop.
type nflogSaver struct {
	log   *nflog.Log
	dirty chan struct{}
}

var _ notify.NotificationLog = nflogSaver{}

func (n nflogSaver) Log(r *nflogpb.Receiver, gkey string, firing, resolved []uint64, store *nflog.Store, expiry time.Duration) error {
	if err := n.log.Log(r, gkey, firing, resolved, store, expiry); err != nil {
		return err
	}
	select {
	case n.dirty <- struct{}{}:
	default: // a save is already pending and will include this entry
	}
	return nil
}

func (n nflogSaver) Query(params ...nflog.QueryParam) ([]*nflogpb.Entry, error) {
	return n.log.Query(params...)
}

// nflogSaveLoop saves the notification log whenever an entry was logged,
// at most once per save's duration, until stopc is closed (the final save
// is Maintenance's).
func (am *Alertmanager) nflogSaveLoop(stopc <-chan struct{}) {
	for {
		select {
		case <-stopc:
			return
		case <-am.nflogDirty:
			_, _ = am.saveNflog() // failures are logged and counted
		}
	}
}

// persistSilenceChanges saves the silences before answering a request that
// changed them (POST /api/v2/silences, DELETE /api/v2/silence/{id}), so a
// silence the client saw created is on disk even if vigil is killed right
// after. If the save fails the client gets a 500: the change is in effect
// but not durable.
func (am *Alertmanager) persistSilenceChanges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mutating := (r.Method == http.MethodPost && strings.HasSuffix(strings.TrimRight(r.URL.Path, "/"), "/api/v2/silences")) ||
			(r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/api/v2/silence/"))
		if !mutating {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.code/100 == 2 {
			if _, err := am.saveSilences(); err != nil {
				http.Error(w, "silence changed but could not be saved: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		_, _ = w.Write(rec.body.Bytes())
	})
}

// bufferedResponse holds a response until the change it reports is saved.
type bufferedResponse struct {
	header      http.Header
	code        int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wroteHeader {
		b.code, b.wroteHeader = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}
