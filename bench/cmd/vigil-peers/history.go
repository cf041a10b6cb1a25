package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-observability/vigil/internal/loadgen"
)

// The back-filled history: long enough that a TSDB cuts its first
// two-hour block (the head is compacted once it spans three hours), at the
// scrape interval Prometheus defaults to; historyLength is its least length. Bytes per sample of a one-minute
// run measure the write-ahead log; what a user keeps for months is blocks.
const (
	historySpacing = 15 * time.Second
	historyLength  = 3*time.Hour + 20*time.Minute
	historyBlock   = 2 * time.Hour
	// historyBlockWait bounds the wait for the first compaction after the
	// history is in: TSDBs look for work every minute.
	historyBlockWait = 4 * time.Minute
)

type historyResult struct {
	err string
	// samples are the samples acknowledged; blockSamples those the
	// compacted blocks hold (from their meta.json), blockBytes the blocks'
	// size on disk; disk the whole data directory after a clean stop.
	samples, blockSamples, blockBytes, disk int64
	blocks                                  int
}

// bytesPerSample is the blocks' bytes per sample where the system writes
// TSDB blocks, else its whole directory's over the samples sent.
func (r historyResult) bytesPerSample() float64 {
	if r.blockSamples > 0 {
		return float64(r.blockBytes) / float64(r.blockSamples)
	}
	return float64(r.disk) / float64(max(1, r.samples))
}

// historySystem sends a fresh system historyLength of the stream, stamped
// from that long ago up to now, every sample retried until acknowledged,
// waits for its first compacted block and measures it.
func (h *harness) historySystem(name string, start func() (*server, error)) historyResult {
	var r historyResult
	s, err := start()
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer stopAfter(s)
	stream := newRWStream(h.opts.historySeries)
	// Blocks are aligned to multiples of two hours since the epoch: start
	// on one so the first block is a whole one.
	origin := time.Now().Add(-historyLength).Truncate(historyBlock)
	passes := int(time.Since(origin) / historySpacing)
	h.recordCommand("compacted history (built into vigil-peers)", nil, []string{fmt.Sprintf(
		"%d series, %d passes %v apart ending now, %d senders, %d series per request, to %s", len(stream.labels), passes, historySpacing, rwSenders, rwSeriesPerReq, s.writeURL)})
	if r.samples, err = h.sendHistory(s.writeURL, stream, origin, passes); err != nil {
		r.err = err.Error()
		return r
	}
	if name == "VictoriaMetrics" {
		if _, err := h.get(s.httpBase + "/internal/force_flush"); err != nil {
			r.err = "force_flush: " + err.Error()
			return r
		}
	} else {
		deadline := time.Now().Add(historyBlockWait)
		for {
			b, err := tsdbBlocks(s.dataDir)
			if err == nil && b.blocks > 0 {
				break
			}
			if time.Now().After(deadline) {
				r.err = fmt.Sprintf("no compacted block within %v of the history's end", historyBlockWait)
				return r
			}
			time.Sleep(2 * time.Second)
		}
	}
	if err := s.p.stop(2 * time.Minute); err != nil {
		r.err = err.Error()
		return r
	}
	if name != "VictoriaMetrics" {
		b, err := tsdbBlocks(s.dataDir)
		if err != nil {
			r.err = err.Error()
			return r
		}
		r.blocks, r.blockSamples, r.blockBytes = b.blocks, b.samples, b.bytes
	}
	r.disk, _ = diskUsage(s.dataDir)
	h.logf("  %s history: %d samples acknowledged, %d blocks with %d samples in %d bytes, %d bytes in all", name, r.samples, r.blocks, r.blockSamples, r.blockBytes, r.disk)
	return r
}

// sendHistory writes passes of the stream in order, each request retried
// while the system answers 429 or 503, so every sample lands.
func (h *harness) sendHistory(url string, s *rwStream, origin time.Time, passes int) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: rwSenders}}
	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, rwSenders)
	for _, mine := range s.senders() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals := make([]float64, len(mine))
			for pass := range passes {
				ts := origin.Add(time.Duration(pass) * historySpacing).UnixMilli()
				for off := 0; off < len(mine); off += rwSeriesPerReq {
					end := min(off+rwSeriesPerReq, len(mine))
					req := s.request(mine[off:end], vals[off:end], pass, ts)
					for {
						err := loadgen.PostRemoteWrite(ctx, client, url, req)
						var se *loadgen.StatusError
						if err == nil {
							acked.Add(int64(end - off))
							break
						}
						if ctx.Err() == nil && errors.As(err, &se) && (se.Code == 429 || se.Code == 503) {
							time.Sleep(50 * time.Millisecond)
							continue
						}
						errs <- fmt.Errorf("history pass %d: %w", pass, err)
						cancel()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return acked.Load(), <-errs
}

type blockStats struct {
	blocks         int
	samples, bytes int64
}

// tsdbBlocks sums the blocks under dir (a directory holding meta.json), as
// written by Prometheus's TSDB, wherever in dir the system keeps them.
func tsdbBlocks(dir string) (blockStats, error) {
	var b blockStats
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "meta.json" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var meta struct {
			Stats struct {
				NumSamples int64 `json:"numSamples"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		size, err := diskUsage(filepath.Dir(path))
		if err != nil {
			return err
		}
		b.blocks++
		b.samples += meta.Stats.NumSamples
		b.bytes += size
		return nil
	})
	return b, err
}
