package tickets

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// The statements CSV: one line per tenant and period, with a header line,
// comma separated, RFC 4180 quoting, UTF-8. Counts are integers; amounts and
// unit prices are decimals with a dot ("12.34"), in the currency of the
// currency column. The columns are documented in docs/operations.md and are
// only ever appended to.

// csvColumn is one column of the statements CSV: how it is written from a
// Statement and read back into one.
type csvColumn struct {
	name string
	get  func(*Statement) string
	set  func(*Statement, string) error
}

func intColumn(name string, f func(*Statement) *int64) csvColumn {
	return csvColumn{name,
		func(s *Statement) string { return strconv.FormatInt(*f(s), 10) },
		func(s *Statement, v string) (err error) { *f(s), err = strconv.ParseInt(v, 10, 64); return err }}
}

func centsColumn(name string, f func(*Statement) *Cents) csvColumn {
	return csvColumn{name,
		func(s *Statement) string { return f(s).String() },
		func(s *Statement, v string) (err error) { *f(s), err = parseCents(v); return err }}
}

func lineColumns(i int, item string) []csvColumn {
	line := func(s *Statement) *StatementLine {
		for len(s.Lines) <= i {
			s.Lines = append(s.Lines, StatementLine{})
		}
		s.Lines[i].Item = item
		return &s.Lines[i]
	}
	return []csvColumn{
		intColumn(item+"_units", func(s *Statement) *int64 { return &line(s).Units }),
		{item + "_unit_price", func(s *Statement) string { return line(s).UnitPrice.String() },
			func(s *Statement, v string) error {
				m, err := ParseMoney(v)
				line(s).UnitPrice, line(s).UnitPriceText = m, m.String()
				return err
			}},
		centsColumn(item+"_amount", func(s *Statement) *Cents { return &line(s).Amount }),
	}
}

func timeColumn(name string, f func(*Statement) *time.Time) csvColumn {
	return csvColumn{name,
		func(s *Statement) string { return f(s).UTC().Format(time.RFC3339) },
		func(s *Statement, v string) (err error) { *f(s), err = time.Parse(time.RFC3339, v); return err }}
}

func strColumn(name string, f func(*Statement) *string) csvColumn {
	return csvColumn{name, func(s *Statement) string { return *f(s) }, func(s *Statement, v string) error { *f(s) = v; return nil }}
}

var statementColumns = func() []csvColumn {
	cols := []csvColumn{
		strColumn("period", func(s *Statement) *string { return &s.Period }),
		strColumn("tenant", func(s *Statement) *string { return &s.Tenant }),
		strColumn("currency", func(s *Statement) *string { return &s.Currency }),
		timeColumn("from", func(s *Statement) *time.Time { return &s.From }),
		timeColumn("to", func(s *Statement) *time.Time { return &s.To }),
		intColumn("minutes_in_period", func(s *Statement) *int64 { return &s.MinutesInPeriod }),
		intColumn("minutes_sampled", func(s *Statement) *int64 { return &s.MinutesSampled }),
		intColumn("minutes_spread", func(s *Statement) *int64 { return &s.MinutesSpread }),
		intColumn("bytes_in", func(s *Statement) *int64 { return &s.BytesIn }),
		intColumn("bytes_out", func(s *Statement) *int64 { return &s.BytesOut }),
		intColumn("requests", func(s *Statement) *int64 { return &s.Requests }),
		intColumn("throttle_ms", func(s *Statement) *int64 { return &s.ThrottleMs }),
		intColumn("peak_in_bps", func(s *Statement) *int64 { return &s.PeakInBps }),
		intColumn("p95_in_bps", func(s *Statement) *int64 { return &s.P95InBps }),
		intColumn("peak_out_bps", func(s *Statement) *int64 { return &s.PeakOutBps }),
		intColumn("p95_out_bps", func(s *Statement) *int64 { return &s.P95OutBps }),
		intColumn("avg_disk_bytes", func(s *Statement) *int64 { return &s.AvgDiskBytes }),
		intColumn("peak_disk_bytes", func(s *Statement) *int64 { return &s.PeakDiskBytes }),
		intColumn("max_partitions", func(s *Statement) *int64 { return &s.MaxPartitions }),
	}
	for i, item := range []string{"produce_mb_s", "fetch_mb_s", "disk_gb", "partition"} {
		cols = append(cols, lineColumns(i, item)...)
	}
	return append(cols,
		centsColumn("total", func(s *Statement) *Cents { return &s.Total }),
		strColumn("suggested_plan", func(s *Statement) *string { return &s.Suggested }))
}()

// writeStatementsCSV writes statements with the header line.
func writeStatementsCSV(w io.Writer, sts []Statement) error {
	cw := csv.NewWriter(w)
	head := make([]string, len(statementColumns))
	for i, c := range statementColumns {
		head[i] = c.name
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for i := range sts {
		rec := make([]string, len(statementColumns))
		for j, c := range statementColumns {
			rec[j] = c.get(&sts[i])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// readStatementsCSV reads what writeStatementsCSV wrote: what a finance
// system importing the file sees.
func readStatementsCSV(r io.Reader) ([]Statement, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(statementColumns)
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("no header line")
	}
	for i, c := range statementColumns {
		if recs[0][i] != c.name {
			return nil, fmt.Errorf("column %d is %q, want %q", i+1, recs[0][i], c.name)
		}
	}
	out := make([]Statement, 0, len(recs)-1)
	for n, rec := range recs[1:] {
		var s Statement
		for i, c := range statementColumns {
			if err := c.set(&s, rec[i]); err != nil {
				return nil, fmt.Errorf("line %d, %s: %w", n+2, c.name, err)
			}
		}
		out = append(out, s)
	}
	return out, nil
}
