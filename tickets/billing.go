package tickets

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicemq/sluice/tickets/store"
)

// Billing: a tenant's usage over a billing period (a calendar month, UTC) is
// computed from its per-minute samples in integers only, and priced per unit
// with the prices of the configuration. The rules, also in
// docs/operations.md:
//   - bandwidth of a minute is its bytes / 60 (bytes per second, rounded up);
//     peak is the maximum over the sampled minutes, p95 the 95th percentile
//     by nearest rank (the value at position ceil(0.95 n) of the sorted
//     minutes);
//   - billed units: produce and fetch MB/s (10^6 bytes/s) at the p95, rounded
//     up; disk GB (10^9 bytes) on average, rounded up; partitions at the
//     maximum;
//   - an amount is units times the unit price (prices have at most 6
//     decimals), rounded half up to the cent once per line.

// Money is an amount of the billing currency in millionths, read from a
// decimal string such as "12.50" so that no binary fraction ever enters.
type Money int64

const microsPerUnit = 1_000_000

// ParseMoney reads a non-negative decimal with at most 6 decimals.
func ParseMoney(s string) (Money, error) {
	s = strings.TrimSpace(s)
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || (hasFrac && frac == "") || len(frac) > 6 || len(whole) > 12 {
		return 0, fmt.Errorf("%q: want a decimal such as 12.50 (at most 6 decimals)", s)
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q: want a decimal such as 12.50 (at most 6 decimals)", s)
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	return Money(w*microsPerUnit + f), nil
}

// UnmarshalYAML reads a price as written, never as a float.
func (m *Money) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("want a decimal such as 12.50")
	}
	v, err := ParseMoney(n.Value)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// String writes the amount with the decimals it has, at least two.
func (m Money) String() string {
	s := fmt.Sprintf("%d.%06d", int64(m)/microsPerUnit, int64(m)%microsPerUnit)
	s = strings.TrimRight(s, "0")
	if i := strings.IndexByte(s, '.'); len(s)-i < 3 {
		s += strings.Repeat("0", 3-(len(s)-i))
	}
	return s
}

// Cents is an amount in hundredths of the currency.
type Cents int64

// String writes cents as a decimal with two places, e.g. 1234 as "12.34".
func (c Cents) String() string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, int64(c)/100, int64(c)%100)
}

// MarshalJSON writes cents as a JSON string "12.34", the form finance
// systems import without floating point.
func (c Cents) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(c.String())), nil }

// UnmarshalJSON reads what MarshalJSON wrote.
func (c *Cents) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := parseCents(s)
	*c = v
	return err
}

func parseCents(s string) (Cents, error) {
	neg := strings.HasPrefix(s, "-")
	m, err := ParseMoney(strings.TrimPrefix(s, "-"))
	if err != nil || int64(m)%10_000 != 0 {
		return 0, fmt.Errorf("amount %q: want a decimal with two places", s)
	}
	c := Cents(int64(m) / 10_000)
	if neg {
		c = -c
	}
	return c, nil
}

// BillingPrices are prices per unit and month.
type BillingPrices struct {
	// ProduceMBs is the price of 1 MB/s (10^6 bytes/s) of produce bandwidth
	// at the month's 95th percentile.
	ProduceMBs Money `yaml:"produce_mb_s" json:"produce_mb_s"`
	// FetchMBs is the price of 1 MB/s of fetch bandwidth at the 95th
	// percentile.
	FetchMBs Money `yaml:"fetch_mb_s" json:"fetch_mb_s"`
	// DiskGB is the price of 1 GB (10^9 bytes) of average disk.
	DiskGB Money `yaml:"disk_gb" json:"disk_gb"`
	// Partition is the price of one partition at the month's maximum.
	Partition Money `yaml:"partition" json:"partition"`
}

// BillingConfig prices tenant usage (billing.go).
type BillingConfig struct {
	// Currency is the ISO 4217 code statements are written in, EUR by
	// default.
	Currency string `yaml:"currency"`
	// Prices are per unit and month; zero prices bill nothing.
	Prices BillingPrices `yaml:"prices"`
	// HeadroomPercent is the margin the suggested plan leaves above the
	// observed p95 bandwidth and peak disk, 20 by default.
	HeadroomPercent int `yaml:"headroom_percent"`
}

// setDefaults fills the zero values: EUR, 20% headroom.
func (b *BillingConfig) setDefaults() {
	if b.Currency == "" {
		b.Currency = "EUR"
	}
	if b.HeadroomPercent == 0 {
		b.HeadroomPercent = 20
	}
}

// validate checks the configuration; it changes nothing. Zero values are the defaults.
func (b *BillingConfig) validate() error {
	if b.Currency != "" && len(b.Currency) != 3 || strings.ToUpper(b.Currency) != b.Currency || strings.Trim(b.Currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return fmt.Errorf("billing.currency: %q is not a three-letter ISO 4217 code such as EUR", b.Currency)
	}
	if b.HeadroomPercent < 0 || b.HeadroomPercent > 1000 {
		return errors.New("billing.headroom_percent: from 0 to 1000")
	}
	return nil
}

// PlanLimits are a plan's limits, as the brokers export them.
type PlanLimits struct {
	ProduceBps  int64 `json:"produce_bytes_per_second"`
	FetchBps    int64 `json:"fetch_bytes_per_second"`
	DiskBytes   int64 `json:"disk_bytes"`
	Partitions  int64 `json:"partitions"`
	Connections int64 `json:"connections"`
}

// Utilisation is how close a tenant ran to its plan, in basis points
// (1/100 of a percent; 10000 is the whole plan); 0 where the plan sets no
// limit.
type Utilisation struct {
	ProducePeakBP int64 `json:"produce_peak_bp"`
	ProduceP95BP  int64 `json:"produce_p95_bp"`
	FetchPeakBP   int64 `json:"fetch_peak_bp"`
	FetchP95BP    int64 `json:"fetch_p95_bp"`
	DiskPeakBP    int64 `json:"disk_peak_bp"`
	PartitionsBP  int64 `json:"partitions_bp"`
}

// Usage is a tenant's usage in one billing period.
type Usage struct {
	Tenant string    `json:"tenant"`
	Period string    `json:"period"` // yyyy-mm
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// MinutesInPeriod is the period's length; MinutesSampled how many of
	// its minutes have a sample, MinutesSpread how many of those were spread
	// over a hole of the metrics history.
	MinutesInPeriod int64 `json:"minutes_in_period"`
	MinutesSampled  int64 `json:"minutes_sampled"`
	MinutesSpread   int64 `json:"minutes_spread"`
	BytesIn         int64 `json:"bytes_in"`
	BytesOut        int64 `json:"bytes_out"`
	Requests        int64 `json:"requests"`
	ThrottleMs      int64 `json:"throttle_ms"`
	// Bandwidths are per-minute averages in bytes per second, rounded up.
	PeakInBps     int64 `json:"peak_in_bps"`
	P95InBps      int64 `json:"p95_in_bps"`
	PeakOutBps    int64 `json:"peak_out_bps"`
	P95OutBps     int64 `json:"p95_out_bps"`
	AvgDiskBytes  int64 `json:"avg_disk_bytes"` // rounded up
	PeakDiskBytes int64 `json:"peak_disk_bytes"`
	MaxPartitions int64 `json:"max_partitions"`
	// Plan is the plan in force at the last sampled minute.
	Plan        PlanLimits  `json:"plan"`
	Utilisation Utilisation `json:"utilisation"`
}

// StatementLine is one priced unit of a statement.
type StatementLine struct {
	Item      string `json:"item"` // produce_mb_s, fetch_mb_s, disk_gb, partition
	Units     int64  `json:"units"`
	UnitPrice Money  `json:"-"`
	// UnitPriceText is UnitPrice as a decimal string.
	UnitPriceText string `json:"unit_price"`
	Amount        Cents  `json:"amount"`
}

// Statement is a tenant's monthly statement.
type Statement struct {
	Usage
	Currency string          `json:"currency"`
	Lines    []StatementLine `json:"lines"`
	Total    Cents           `json:"total"`
	// Suggested is the plan suggested from the observed peaks, empty when
	// no plan is known; SuggestedReason says why.
	Suggested       string `json:"suggested_plan"`
	SuggestedReason string `json:"suggested_reason"`
}

// ParsePeriod reads a billing period "yyyy-mm" and returns its first
// instant and the next period's, in UTC.
func ParsePeriod(s string) (time.Time, time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 || t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, time.Time{}, fmt.Errorf("period %q: want yyyy-mm, such as 2026-04", s)
	}
	return t, t.AddDate(0, 1, 0), nil
}

// ceilDiv is a/b rounded up for non-negative a and positive b.
func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// p95 is the 95th percentile of xs by nearest rank; xs is sorted in place.
func p95(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	return xs[(95*len(xs)+99)/100-1]
}

// basisPoints is v/limit in 1/100 of a percent, rounded down; 0 without a limit.
func basisPoints(v, limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	r := new(big.Int).Mul(big.NewInt(v), big.NewInt(10_000))
	return r.Quo(r, big.NewInt(limit)).Int64()
}

// computeUsage sums a tenant's samples of one period (oldest first).
func computeUsage(tenant, period string, from, to time.Time, samples []store.TenantSample) Usage {
	u := Usage{Tenant: tenant, Period: period, From: from, To: to, MinutesInPeriod: int64(to.Sub(from) / time.Minute)}
	ins, outs := make([]int64, 0, len(samples)), make([]int64, 0, len(samples))
	disk := new(big.Int)
	for _, s := range samples {
		u.MinutesSampled++
		if s.Source == store.SourceSpread {
			u.MinutesSpread++
		}
		u.BytesIn += s.BytesIn
		u.BytesOut += s.BytesOut
		u.Requests += s.Requests
		u.ThrottleMs += s.ThrottleMs
		in, out := ceilDiv(s.BytesIn, 60), ceilDiv(s.BytesOut, 60)
		ins, outs = append(ins, in), append(outs, out)
		u.PeakInBps, u.PeakOutBps = max(u.PeakInBps, in), max(u.PeakOutBps, out)
		disk.Add(disk, big.NewInt(s.DiskBytes))
		u.PeakDiskBytes = max(u.PeakDiskBytes, s.DiskBytes)
		u.MaxPartitions = max(u.MaxPartitions, s.Partitions)
		u.Plan = PlanLimits{ProduceBps: s.PlanProduceBps, FetchBps: s.PlanFetchBps, DiskBytes: s.PlanDiskBytes,
			Partitions: s.PlanPartitions, Connections: s.PlanConnections}
	}
	u.P95InBps, u.P95OutBps = p95(ins), p95(outs)
	if n := int64(len(samples)); n > 0 {
		q, r := new(big.Int).QuoRem(disk, big.NewInt(n), new(big.Int))
		u.AvgDiskBytes = q.Int64()
		if r.Sign() > 0 {
			u.AvgDiskBytes++
		}
	}
	u.Utilisation = Utilisation{
		ProducePeakBP: basisPoints(u.PeakInBps, u.Plan.ProduceBps), ProduceP95BP: basisPoints(u.P95InBps, u.Plan.ProduceBps),
		FetchPeakBP: basisPoints(u.PeakOutBps, u.Plan.FetchBps), FetchP95BP: basisPoints(u.P95OutBps, u.Plan.FetchBps),
		DiskPeakBP: basisPoints(u.PeakDiskBytes, u.Plan.DiskBytes), PartitionsBP: basisPoints(u.MaxPartitions, u.Plan.Partitions),
	}
	return u
}

// amount is units times price in cents, rounded half up.
func amount(units int64, price Money) Cents {
	m := new(big.Int).Mul(big.NewInt(units), big.NewInt(int64(price)))
	m.Add(m, big.NewInt(5_000))
	return Cents(m.Quo(m, big.NewInt(10_000)).Int64())
}

// NamedPlan is a plan of the cluster, for the suggestion.
type NamedPlan struct {
	Name string
	PlanLimits
}

// planPrice is what a plan's limits would cost a month at prices.
func planPrice(p PlanLimits, prices BillingPrices) Cents {
	return amount(ceilDiv(p.ProduceBps, 1_000_000), prices.ProduceMBs) + amount(ceilDiv(p.FetchBps, 1_000_000), prices.FetchMBs) +
		amount(ceilDiv(p.DiskBytes, 1_000_000_000), prices.DiskGB) + amount(p.Partitions, prices.Partition)
}

// suggestPlan picks the cheapest plan (at cfg's prices; then the smallest
// produce bandwidth, then by name; plans with an unlimited bandwidth, disk
// or partitions last) whose produce and fetch bandwidth cover
// the observed p95 and whose disk covers the observed peak, each with
// headroom percent to spare, and whose partitions cover the maximum.
func suggestPlan(u Usage, plans []NamedPlan, cfg BillingConfig) (string, string) {
	if len(plans) == 0 {
		return "", "no plans are defined"
	}
	need := func(v int64) int64 { return ceilDiv(v*int64(100+cfg.HeadroomPercent), 100) }
	// A zero limit is unlimited: it covers anything, and such a plan is
	// suggested only when no limited plan fits.
	covers := func(limit, v int64) bool { return limit == 0 || limit >= v }
	unlimited := func(p NamedPlan) bool {
		return p.ProduceBps == 0 || p.FetchBps == 0 || p.DiskBytes == 0 || p.Partitions == 0
	}
	fits := make([]NamedPlan, 0, len(plans))
	for _, p := range plans {
		if covers(p.ProduceBps, need(u.P95InBps)) && covers(p.FetchBps, need(u.P95OutBps)) && covers(p.DiskBytes, need(u.PeakDiskBytes)) && covers(p.Partitions, u.MaxPartitions) {
			fits = append(fits, p)
		}
	}
	if len(fits) == 0 {
		return "", fmt.Sprintf("no plan covers p95 produce %d B/s, p95 fetch %d B/s, peak disk %d B with %d%% headroom and %d partitions",
			u.P95InBps, u.P95OutBps, u.PeakDiskBytes, cfg.HeadroomPercent, u.MaxPartitions)
	}
	sort.Slice(fits, func(i, j int) bool {
		if ui, uj := unlimited(fits[i]), unlimited(fits[j]); ui != uj {
			return uj
		}
		pi, pj := planPrice(fits[i].PlanLimits, cfg.Prices), planPrice(fits[j].PlanLimits, cfg.Prices)
		if pi != pj {
			return pi < pj
		}
		if fits[i].ProduceBps != fits[j].ProduceBps {
			return fits[i].ProduceBps < fits[j].ProduceBps
		}
		return fits[i].Name < fits[j].Name
	})
	return fits[0].Name, fmt.Sprintf("the cheapest plan covering p95 bandwidth and peak disk with %d%% headroom", cfg.HeadroomPercent)
}

// buildStatement prices u at cfg's prices.
func buildStatement(u Usage, plans []NamedPlan, cfg BillingConfig) Statement {
	st := Statement{Usage: u, Currency: cfg.Currency}
	for _, l := range []struct {
		item  string
		units int64
		price Money
	}{
		{"produce_mb_s", ceilDiv(u.P95InBps, 1_000_000), cfg.Prices.ProduceMBs},
		{"fetch_mb_s", ceilDiv(u.P95OutBps, 1_000_000), cfg.Prices.FetchMBs},
		{"disk_gb", ceilDiv(u.AvgDiskBytes, 1_000_000_000), cfg.Prices.DiskGB},
		{"partition", u.MaxPartitions, cfg.Prices.Partition},
	} {
		line := StatementLine{Item: l.item, Units: l.units, UnitPrice: l.price, UnitPriceText: l.price.String(), Amount: amount(l.units, l.price)}
		st.Lines = append(st.Lines, line)
		st.Total += line.Amount
	}
	st.Suggested, st.SuggestedReason = suggestPlan(u, plans, cfg)
	return st
}
