package configcentre

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// compactBytes is the log size past which OpenLocal writes a snapshot and
// starts a new log (a variable for tests).
var compactBytes int64 = 64 << 20

const (
	snapshotFile = "snapshot.json"
	logPrefix    = "commands-"
	logSuffix    = ".log"
	// recordHeader is a record's length and CRC-32C, 4 bytes each.
	recordHeader = 8
	// maxRecord bounds a record's length as read, so a damaged length
	// cannot allocate much: a command holds at most one content.
	maxRecord = MaxContentBytes + 64<<10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Local is the single-node store: the Machine, with every accepted
// command appended to a log file and synced before Propose returns, so a
// restart (or kill -9) loses no acknowledged write.
//
// On disk, under its directory: commands-<N>.log, records of a length, a
// CRC-32C and the command's JSON; and snapshot.json, the state up to the
// start of log N (its "log" field), written atomically (a temporary file
// synced, then renamed). Safe for concurrent use; writes are serialised.
type Local struct {
	dir string
	m   *Machine

	mu  sync.Mutex
	log *os.File
	// size is the log's length up to its last complete record.
	size int64
	// Dropped is how many bytes of a damaged or torn last record were cut
	// from the log at open (a write that never returned, so never
	// acknowledged).
	Dropped int64
}

type snapshotFileV1 struct {
	// Log is the number of the log that follows this snapshot.
	Log   uint64          `json:"log"`
	State json.RawMessage `json:"state"`
}

// OpenLocal opens (creating it if needed) the store in dir and loads its
// state.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Local{dir: dir, m: NewMachine()}
	logNum := uint64(1)
	if b, err := os.ReadFile(filepath.Join(dir, snapshotFile)); err == nil {
		var s snapshotFileV1
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("configcentre: %s: %w", filepath.Join(dir, snapshotFile), err)
		}
		if err := l.m.Restore(bytes.NewReader(s.State)); err != nil {
			return nil, fmt.Errorf("configcentre: %s: %w", filepath.Join(dir, snapshotFile), err)
		}
		logNum = s.Log
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	path := l.logPath(logNum)
	size, err := l.replay(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	l.log, l.size = f, size
	l.removeOldLogs(logNum)
	if size > compactBytes {
		if err := l.compact(logNum); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// Machine is the state, for reads.
func (l *Local) Machine() *Machine { return l.m }

func (l *Local) logPath(n uint64) string {
	return filepath.Join(l.dir, logPrefix+strconv.FormatUint(n, 10)+logSuffix)
}

// replay applies the log's records and returns the length of its intact
// prefix; what follows it (a torn or damaged record) is counted in
// Dropped.
func (l *Local) replay(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	r := bufio.NewReader(f)
	var off int64
	var hdr [recordHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > maxRecord {
			break
		}
		rec := make([]byte, n)
		if _, err := io.ReadFull(r, rec); err != nil {
			break
		}
		if crc32.Checksum(rec, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
			break
		}
		var c Command
		if err := json.Unmarshal(rec, &c); err != nil {
			return 0, fmt.Errorf("configcentre: %s at offset %d: %w", path, off, err)
		}
		// Only accepted commands are written, so a refusal here means the
		// code's rules changed; the state is the same as if it had been
		// refused then.
		_, _ = l.m.ApplyCommand(c)
		off += recordHeader + int64(n)
	}
	l.Dropped = st.Size() - off
	return off, nil
}

// Propose checks c, appends it to the log, syncs, and applies it. A
// refused command is not written.
func (l *Local) Propose(ctx context.Context, c Command) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.log == nil {
		return Result{}, errors.New("configcentre: store is closed")
	}
	if err := l.m.Check(c); err != nil {
		return Result{}, err
	}
	b, err := EncodeCommand(c)
	if err != nil {
		return Result{}, err
	}
	rec := make([]byte, recordHeader, recordHeader+len(b))
	binary.BigEndian.PutUint32(rec[:4], uint32(len(b)))
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(b, castagnoli))
	rec = append(rec, b...)
	if _, err := l.log.Write(rec); err != nil {
		l.cut()
		return Result{}, fmt.Errorf("configcentre: writing the log: %w", err)
	}
	if err := l.log.Sync(); err != nil {
		l.cut()
		return Result{}, fmt.Errorf("configcentre: syncing the log: %w", err)
	}
	l.size += int64(len(rec))
	return l.m.ApplyCommand(c)
}

// cut drops a record whose write or sync failed, so a later record does
// not follow a torn one (where a replay would stop). If that fails too,
// the log is closed and writes are refused until a restart, whose replay
// cuts the torn record.
func (l *Local) cut() {
	if l.log.Truncate(l.size) == nil {
		if _, err := l.log.Seek(l.size, io.SeekStart); err == nil {
			return
		}
	}
	_ = l.log.Close()
	l.log = nil
}

// compact writes the state as a snapshot followed by the empty log
// logNum+1, and removes log logNum. Called at open, before any Propose.
func (l *Local) compact(logNum uint64) error {
	snap, err := l.m.Snapshot()
	if err != nil {
		return err
	}
	var state bytes.Buffer
	if err := snap(&state); err != nil {
		return err
	}
	next := logNum + 1
	nf, err := os.OpenFile(l.logPath(next), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	b, err := json.Marshal(snapshotFileV1{Log: next, State: state.Bytes()})
	if err == nil {
		err = writeAtomic(filepath.Join(l.dir, snapshotFile), b)
	}
	if err != nil {
		nf.Close()
		return err
	}
	l.log.Close()
	l.log, l.size = nf, 0
	l.removeOldLogs(next)
	return nil
}

// removeOldLogs removes logs numbered below keep, which a snapshot covers.
func (l *Local) removeOldLogs(keep uint64) {
	entries, _ := os.ReadDir(l.dir)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, logPrefix) || !strings.HasSuffix(name, logSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, logPrefix), logSuffix), 10, 64)
		if err == nil && n < keep {
			_ = os.Remove(filepath.Join(l.dir, name))
		}
	}
}

// writeAtomic replaces path with b: written to a temporary file, synced,
// renamed over path, and the directory synced.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close closes the log.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.log == nil {
		return nil
	}
	err := l.log.Close()
	l.log = nil
	return err
}
