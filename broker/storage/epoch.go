package storage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicemq/sluice/internal/durable"
)

// epochCheckpointFile is the leader epoch cache file, in Kafka's
// leader-epoch-checkpoint text format: a version line (0), a count line, and
// one "epoch startOffset" line per entry.
const epochCheckpointFile = "leader-epoch-checkpoint"

// epochEntry says that leader epoch epoch began at offset start.
type epochEntry struct {
	epoch int32
	start int64
}

// epochCache is Kafka's LeaderEpochFileCache: the start offset of each
// leader epoch that wrote to the log, ascending in both. Guarded by Log.mu
// for writes and Log.segMu for reads (writes hold both).
type epochCache struct {
	path    string
	entries []epochEntry
}

func loadEpochCache(dir string) (*epochCache, error) {
	c := &epochCache{path: filepath.Join(dir, epochCheckpointFile)}
	b, err := os.ReadFile(c.path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		if line <= 2 {
			continue // version and count; the entries speak for themselves
		}
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			return c.reset(), nil
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return c.reset(), nil
		}
		c.assign(int32(e), o)
	}
	return c, nil
}

// reset drops a corrupt cache; it is rebuilt from the batches' partition
// leader epochs when the log is next recovered.
func (c *epochCache) reset() *epochCache {
	c.entries = nil
	return c
}

func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].epoch
}

// assign records that epoch starts at offset start, if epoch is newer than
// every known epoch. It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, start int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if epoch <= last.epoch {
			return false
		}
		if start < last.start {
			// A newer epoch cannot start before an older one; the
			// older entries are stale.
			c.truncateFrom(start)
		}
	}
	c.entries = append(c.entries, epochEntry{epoch: epoch, start: start})
	return true
}

// endOffsetFor implements OffsetForLeaderEpoch for the cache: the largest
// epoch at most epoch, and the start offset of the epoch after it (or leo
// for the latest epoch).
func (c *epochCache) endOffsetFor(epoch int32, leo int64) (int32, int64) {
	if epoch < 0 || len(c.entries) == 0 {
		return -1, -1
	}
	if epoch == c.latest() {
		return epoch, leo
	}
	i := 0
	for i < len(c.entries) && c.entries[i].epoch <= epoch {
		i++
	}
	if i == len(c.entries) {
		return -1, -1 // newer than anything we know
	}
	if i == 0 {
		return epoch, c.entries[0].start
	}
	return c.entries[i-1].epoch, c.entries[i].start
}

// truncateFrom drops the epochs that start at or after off, for TruncateTo.
func (c *epochCache) truncateFrom(off int64) {
	i := len(c.entries)
	for i > 0 && c.entries[i-1].start >= off {
		i--
	}
	c.entries = c.entries[:i]
}

// truncateBefore drops epochs that end before off and moves the start of
// the epoch holding off to off, for a new log start offset.
func (c *epochCache) truncateBefore(off int64) {
	i := 0
	for i < len(c.entries) && c.entries[i].start <= off {
		i++
	}
	if i == 0 {
		return
	}
	keep := c.entries[i-1]
	keep.start = off
	c.entries = append([]epochEntry{keep}, c.entries[i:]...)
}

func (c *epochCache) write() error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.start)
	}
	return durable.WriteFile(c.path, b.Bytes(), 0o644)
}
