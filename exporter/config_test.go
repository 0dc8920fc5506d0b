package exporter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Bootstrap = []string{"127.0.0.1:9092", " 127.0.0.1:9093"}
		return c
	}
	c := valid()
	require.NoError(t, c.Validate())
	assert.Equal(t, c.Interval, c.CollectTimeout, "the collect timeout defaults to the interval")
	assert.Equal(t, ":9308", c.Listen)
	assert.Equal(t, 15*time.Second, c.Interval)

	for _, tc := range []struct {
		field  string
		change func(*Config)
	}{
		{"bootstrap", func(c *Config) { c.Bootstrap = nil }},
		{"bootstrap", func(c *Config) { c.Bootstrap = []string{"nohost"} }},
		{"listen", func(c *Config) { c.Listen = "9308" }},
		{"interval", func(c *Config) { c.Interval = 0 }},
		{"collect_timeout", func(c *Config) { c.CollectTimeout = -time.Second }},
		{"status_window", func(c *Config) { c.StatusWindow = 1 }},
		{"fetch_offsets_concurrency", func(c *Config) { c.FetchOffsetsConcurrency = 0 }},
		{"groups_per_request", func(c *Config) { c.GroupsPerRequest = 0 }},
		{"lag_time_reads_per_cycle", func(c *Config) { c.LagTimeReadsPerCycle = -1 }},
		{"topic_filter", func(c *Config) { c.TopicFilter = "(" }},
		{"group_filter", func(c *Config) { c.GroupFilter = "[" }},
		{"client_id", func(c *Config) { c.ClientID = "" }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field+":")
			_, err = New(c, testLogger(t))
			require.Error(t, err, "New validates")
		})
	}
}
