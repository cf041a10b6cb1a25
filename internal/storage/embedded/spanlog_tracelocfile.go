package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"syscall"
)

// A day's trace locations are written beside its file when the store
// closes (spanlog-YYYYMMDD.duckdb.locs), so that the next start reads
// them in one go instead of grouping the day's trace_index rows again,
// which took 0.5-2.7 s over 2M traces while every trace read of the day
// scanned its table meanwhile.
//
// The file is a cache of the table and is trusted only as long as the
// table is unchanged: it records how many rows trace_index held, and
// trace_index only grows (one row per trace and batch, never updated;
// the one rebuild, of files older than the counts, happens before any
// file is written here). A write committed after the file, a crash with
// writes in the WAL included, adds rows, and the next start reads the
// table. It is removed once read, so it can describe only the file it
// was written beside at the last close.
//
// Layout, little-endian: magic, the table's row count, the traces, then
// each trace's low half (sorted) and location, and a CRC-32C of all that
// precedes it.
const (
	locsFileSuffix = ".locs"
	locsFileMagic  = "VGLOCS01"
	locsHeader     = len(locsFileMagic) + 8 + 8
	locsEntry      = 8 + 8 + 4 + 4
)

var locsCRC = crc32.MakeTable(crc32.Castagnoli)

// writeTraceLocsFile writes the day's held locations beside its file,
// with the row count of its trace_index that they cover. The caller
// holds mu exclusively, so no write is in flight.
func (s *SpanLogStore) writeTraceLocsFile(ctx context.Context, p *partition) error {
	path := p.path + locsFileSuffix
	t := p.locs
	t.mu.Lock()
	if t.off || t.loading {
		t.mu.Unlock()
		return removeIfExists(path)
	}
	t.compact()
	keys, locs := t.keys, t.locs
	t.mu.Unlock()
	var rows int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+p.alias+".trace_index").Scan(&rows); err != nil {
		return fmt.Errorf("embedded: count trace index rows of %s: %w", p.path, err)
	}
	buf := make([]byte, 0, locsHeader+len(keys)*locsEntry+4)
	buf = append(buf, locsFileMagic...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(rows))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(keys)))
	for i, k := range keys {
		buf = binary.LittleEndian.AppendUint64(buf, k)
		buf = binary.LittleEndian.AppendUint64(buf, uint64(locs[i].start))
		buf = binary.LittleEndian.AppendUint32(buf, locs[i].ms)
		buf = binary.LittleEndian.AppendUint32(buf, locs[i].bytes)
	}
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, locsCRC))
	if !s.guard.room(int64(len(buf))) {
		// The reserve is for the WAL and checkpoints; a start without the
		// file only reads the table.
		return removeIfExists(path)
	}
	// Renamed into place, so that a reader finds a whole file or none; not
	// synced, since a lost or torn file only means reading the table.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o644); err != nil {
		return errors.Join(fmt.Errorf("embedded: write trace locations of %s: %w", p.path, err), removeIfExists(tmp), removeIfExists(path))
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("embedded: write trace locations of %s: %w", p.path, err), removeIfExists(tmp), removeIfExists(path))
	}
	return nil
}

// room reports whether n more bytes leave the reserve free, without
// counting a refusal as check does: nothing a client sent is refused.
func (g *diskGuard) room(n int64) bool {
	if g.reserve < 0 {
		return true
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(g.dir, &st); err != nil {
		return true
	}
	return int64(st.Bavail)*st.Bsize-n >= g.reserve
}

// readTraceLocsFile returns the locations written beside p's file if they
// cover its trace_index as it is (rows rows) and fit left traces; ok is
// false otherwise, and the table must be read. The file is removed either
// way.
func readTraceLocsFile(p *partition, rows, left int64) (keys []uint64, locs []traceLoc, ok bool, err error) {
	path := p.path + locsFileSuffix
	buf, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, false, nil
	}
	if rerr := removeIfExists(path); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("embedded: read trace locations of %s: %w", p.path, err)
	}
	if len(buf) < locsHeader+4 || string(buf[:len(locsFileMagic)]) != locsFileMagic {
		return nil, nil, false, nil
	}
	body := buf[:len(buf)-4]
	if crc32.Checksum(body, locsCRC) != binary.LittleEndian.Uint32(buf[len(buf)-4:]) {
		return nil, nil, false, nil
	}
	had := int64(binary.LittleEndian.Uint64(body[len(locsFileMagic):]))
	n := binary.LittleEndian.Uint64(body[len(locsFileMagic)+8:])
	if had != rows || n > uint64(max(left, 0)) || uint64(len(body)-locsHeader) != n*locsEntry {
		return nil, nil, false, nil
	}
	keys, locs = make([]uint64, n), make([]traceLoc, n)
	e := body[locsHeader:]
	for i := range keys {
		keys[i] = binary.LittleEndian.Uint64(e)
		locs[i] = traceLoc{
			start: int64(binary.LittleEndian.Uint64(e[8:])),
			ms:    binary.LittleEndian.Uint32(e[16:]),
			bytes: binary.LittleEndian.Uint32(e[20:]),
		}
		if i > 0 && keys[i] <= keys[i-1] {
			return nil, nil, false, nil
		}
		e = e[locsEntry:]
	}
	return keys, locs, true, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
