package tickets

import (
	"bytes"
	"context"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sluicemq/sluice/tickets/store"
)

// syntheticMonth is a month of per-minute samples for two tenants: random
// traffic with bursts, disk growing and shrinking, a few spread minutes.
func syntheticMonth(from, to time.Time) map[string][]store.TenantSample {
	out := map[string][]store.TenantSample{}
	for ti, tenant := range []string{"alpha", "beta"} {
		rng := rand.New(rand.NewPCG(uint64(ti+1), 42))
		var rows []store.TenantSample
		for m := store.UnixMinute(from); m < store.UnixMinute(to); m++ {
			in := rng.Int64N(600_000_000) // up to 10 MB/s
			if rng.IntN(500) == 0 {
				in += 3_000_000_000 // a burst
			}
			s := store.TenantSample{Tenant: tenant, Minute: m, BytesIn: in, BytesOut: rng.Int64N(1_200_000_000),
				Requests: rng.Int64N(100_000), ThrottleMs: rng.Int64N(3) * 500,
				DiskBytes: 400_000_000_000 + rng.Int64N(900_000_000_000), Partitions: 10 + rng.Int64N(20),
				PlanProduceBps: 20_000_000, PlanFetchBps: 40_000_000, PlanDiskBytes: 2_000_000_000_000, PlanPartitions: 64, PlanConnections: 500}
			if ti == 1 && m%997 == 0 {
				s.Source = store.SourceSpread
			}
			rows = append(rows, s)
		}
		out[tenant] = rows
	}
	return out
}

// independent computes what a statement must say the slow way, with
// arbitrary-precision rationals: the test's own reading of the rules.
type independent struct {
	bytesIn, bytesOut, peakIn, p95In, peakOut, p95Out, avgDisk, peakDisk, maxParts int64
}

func computeIndependently(rows []store.TenantSample) independent {
	var r independent
	var ins, outs []*big.Rat
	diskSum := new(big.Rat)
	ceil := func(x *big.Rat) int64 {
		q := new(big.Int).Quo(x.Num(), x.Denom())
		if new(big.Rat).SetInt(q).Cmp(x) < 0 {
			q.Add(q, big.NewInt(1))
		}
		return q.Int64()
	}
	for _, s := range rows {
		r.bytesIn += s.BytesIn
		r.bytesOut += s.BytesOut
		ins = append(ins, big.NewRat(s.BytesIn, 60))
		outs = append(outs, big.NewRat(s.BytesOut, 60))
		diskSum.Add(diskSum, new(big.Rat).SetInt64(s.DiskBytes))
		if s.DiskBytes > r.peakDisk {
			r.peakDisk = s.DiskBytes
		}
		if s.Partitions > r.maxParts {
			r.maxParts = s.Partitions
		}
	}
	cmp := func(a, b *big.Rat) int { return a.Cmp(b) }
	slices.SortFunc(ins, cmp)
	slices.SortFunc(outs, cmp)
	n := len(rows)
	// Nearest rank: the smallest value with at least 95% of the minutes at
	// or below it.
	rank := 0
	for rank*100 < 95*n {
		rank++
	}
	r.peakIn, r.p95In = ceil(ins[n-1]), ceil(ins[rank-1])
	r.peakOut, r.p95Out = ceil(outs[n-1]), ceil(outs[rank-1])
	r.avgDisk = ceil(diskSum.Quo(diskSum, new(big.Rat).SetInt64(int64(n))))
	return r
}

// TestStatementOfASyntheticMonth: 43,200 per-minute rows for each of two
// tenants, written to the database and read back, give statements whose
// peaks, p95, totals and amounts equal an independent computation, and
// whose CSV parses back to the same numbers.
func TestStatementOfASyntheticMonth(t *testing.T) {
	from, to, err := ParsePeriod("2026-04")
	require.NoError(t, err)
	require.Equal(t, 43_200, int(to.Sub(from)/time.Minute))
	st, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir(), Database: testDatabase(t)})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	month := syntheticMonth(from, to)
	for _, rows := range month {
		require.NoError(t, st.RecordMetering(ctx, rows, nil))
	}
	// A sample of the next month must not count.
	require.NoError(t, st.RecordMetering(ctx, []store.TenantSample{{Tenant: "alpha", Minute: store.UnixMinute(to), BytesIn: 1 << 50}}, nil))

	var cfg BillingConfig
	require.NoError(t, yaml.Unmarshal([]byte("currency: EUR\nprices: {produce_mb_s: 12.5, fetch_mb_s: \"4.10\", disk_gb: 0.023, partition: 0.333333}\n"), &cfg))
	cfg.setDefaults()
	require.NoError(t, cfg.validate())
	plans := []NamedPlan{
		{"small", PlanLimits{ProduceBps: 5_000_000, FetchBps: 10_000_000, DiskBytes: 500_000_000_000, Partitions: 32}},
		{"medium", PlanLimits{ProduceBps: 20_000_000, FetchBps: 40_000_000, DiskBytes: 2_000_000_000_000, Partitions: 64}},
		{"large", PlanLimits{ProduceBps: 100_000_000, FetchBps: 200_000_000, DiskBytes: 10_000_000_000_000, Partitions: 512}},
	}
	var sts []Statement
	for _, tenant := range []string{"alpha", "beta"} {
		rows, err := st.TenantSamples(ctx, tenant, from, to)
		require.NoError(t, err)
		require.Len(t, rows, 43_200)
		s := buildStatement(computeUsage(tenant, "2026-04", from, to, rows), plans, cfg)
		want := computeIndependently(month[tenant])

		require.Equal(t, want.bytesIn, s.BytesIn, tenant)
		require.Equal(t, want.bytesOut, s.BytesOut, tenant)
		require.Equal(t, want.peakIn, s.PeakInBps, tenant)
		require.Equal(t, want.p95In, s.P95InBps, tenant)
		require.Equal(t, want.peakOut, s.PeakOutBps, tenant)
		require.Equal(t, want.p95Out, s.P95OutBps, tenant)
		require.Equal(t, want.avgDisk, s.AvgDiskBytes, tenant)
		require.Equal(t, want.peakDisk, s.PeakDiskBytes, tenant)
		require.Equal(t, want.maxParts, s.MaxPartitions, tenant)
		require.Equal(t, int64(43_200), s.MinutesSampled)
		require.Greater(t, s.PeakInBps, s.P95InBps, "the bursts are above the p95")

		// Amounts: units rounded up, times the price, half up to the cent.
		units := []int64{(want.p95In + 999_999) / 1_000_000, (want.p95Out + 999_999) / 1_000_000, (want.avgDisk + 999_999_999) / 1_000_000_000, want.maxParts}
		prices := []*big.Rat{big.NewRat(125, 10), big.NewRat(41, 10), big.NewRat(23, 1000), big.NewRat(333333, 1_000_000)}
		var total int64
		for i, l := range s.Lines {
			require.Equal(t, units[i], l.Units, l.Item)
			cents := new(big.Rat).Mul(new(big.Rat).SetInt64(units[i]), prices[i])
			cents.Mul(cents, big.NewRat(100, 1)).Add(cents, big.NewRat(1, 2))
			c := new(big.Int).Quo(cents.Num(), cents.Denom()).Int64()
			require.Equal(t, Cents(c), l.Amount, l.Item)
			total += c
		}
		require.Equal(t, Cents(total), s.Total)
		// Utilisation against the plan in the samples.
		require.Equal(t, want.p95In*10_000/20_000_000, s.Utilisation.ProduceP95BP)
		require.Equal(t, want.peakDisk*10_000/2_000_000_000_000, s.Utilisation.DiskPeakBP)
		sts = append(sts, s)
	}
	// alpha's p95 produce is under 10 MB/s and its disk peaks near 1.3 TB:
	// medium covers it with 20% headroom, small does not.
	require.Equal(t, "medium", sts[0].Suggested, sts[0].SuggestedReason)

	var buf bytes.Buffer
	require.NoError(t, writeStatementsCSV(&buf, sts))
	require.Equal(t, 3, bytes.Count(buf.Bytes(), []byte("\n")), "a header and one line per tenant")
	back, err := readStatementsCSV(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Len(t, back, 2)
	for i := range sts {
		want := sts[i]
		want.Plan, want.Utilisation, want.SuggestedReason = PlanLimits{}, Utilisation{}, ""
		require.Equal(t, want, back[i])
	}
}

func TestMoneyAndPeriodsRefuseBadInput(t *testing.T) {
	for _, bad := range []string{"", "-1", "1e3", "1.", ".5", "1.2345678", "12,50", "NaN", "0x10"} {
		_, err := ParseMoney(bad)
		require.Error(t, err, bad)
	}
	m, err := ParseMoney("0.000001")
	require.NoError(t, err)
	require.Equal(t, Money(1), m)
	require.Equal(t, "0.000001", m.String())
	require.Equal(t, "12.50", Money(12_500_000).String())
	for _, bad := range []string{"2026-13", "2026-4", "26-04", "2026-04-01", "1999-12", "april"} {
		_, _, err := ParsePeriod(bad)
		require.Error(t, err, bad)
	}
	var cfg BillingConfig
	err = yaml.Unmarshal([]byte("prices: {disk_gb: 1.5e2}\n"), &cfg)
	require.ErrorContains(t, err, "1.5e2")
	cfg = BillingConfig{Currency: "euro"}
	require.ErrorContains(t, cfg.validate(), "billing.currency")
}

func TestSuggestedPlanPrefersLimitedPlans(t *testing.T) {
	cfg := BillingConfig{Prices: BillingPrices{ProduceMBs: 1_000_000}}
	cfg.setDefaults()
	u := Usage{P95InBps: 4_000_000, PeakDiskBytes: 10, MaxPartitions: 3}
	plans := []NamedPlan{
		{"unlimited", PlanLimits{}},
		{"five", PlanLimits{ProduceBps: 5_000_000, FetchBps: 1, DiskBytes: 100, Partitions: 10}},
		{"ten", PlanLimits{ProduceBps: 10_000_000, FetchBps: 1, DiskBytes: 100, Partitions: 10}},
	}
	name, _ := suggestPlan(u, plans, cfg)
	require.Equal(t, "five", name, "4 MB/s with 20%% headroom is 4.8 MB/s")
	u.P95InBps = 9_000_000
	name, _ = suggestPlan(u, plans, cfg)
	require.Equal(t, "unlimited", name, "10 MB/s does not leave 20%% headroom over 9 MB/s")
	name, why := suggestPlan(u, plans[1:], cfg)
	require.Empty(t, name)
	require.Contains(t, why, "no plan covers")
}
