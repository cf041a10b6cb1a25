package configcentre

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// cacheFile is the file that holds item's last value: one per item, named
// by the item with '/' replaced ("shop~payment~settings.json"; a name
// holds no '/', and '~' is escaped so names stay distinct).
func (c *Client) cacheFile(item string) string {
	name := strings.NewReplacer("%", "%25", "~", "%7E").Replace(item)
	name = strings.ReplaceAll(name, "/", "~")
	return filepath.Join(c.opts.CacheDir, name+".json")
}

type cached struct {
	Item string `json:"item"`
	Snapshot
}

func (c *Client) readCache(item string) (Snapshot, bool) {
	if c.opts.CacheDir == "" {
		return Snapshot{}, false
	}
	b, err := os.ReadFile(c.cacheFile(item))
	if err != nil {
		return Snapshot{}, false
	}
	var f cached
	if err := json.Unmarshal(b, &f); err != nil || f.Item != item || f.Version == 0 || f.MD5 == "" {
		c.opts.Logger.Warn("vigil config: ignoring an unreadable disk cache file", "file", c.cacheFile(item))
		return Snapshot{}, false
	}
	return f.Snapshot, true
}

// writeCache writes atomically: a temporary file in the same directory,
// synced, then renamed over the old one, so a crash leaves the old value
// or the new, never half of one.
func (c *Client) writeCache(item string, s Snapshot) error {
	if c.opts.CacheDir == "" {
		return nil
	}
	if err := os.MkdirAll(c.opts.CacheDir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(cached{Item: item, Snapshot: s})
	if err != nil {
		return err
	}
	dst := c.cacheFile(item)
	tmp, err := os.CreateTemp(c.opts.CacheDir, filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
