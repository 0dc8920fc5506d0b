package silences

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMatchers(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: `alertname="A"`, want: `alertname="A"`},
		{in: `a=b, c!="d,e"` + "\n" + `f=~"g.*"` + "\n\n" + `h!~i`, want: `a="b", c!="d,e", f=~"g.*", h!~"i"`},
		{in: `a="say \"hi\""`, want: `a="say \"hi\""`},
		{in: ``, err: "at least one"},
		{in: `=x`, err: "want name"},
		{in: `a-b="x"`, err: "not a label name"},
		{in: `a="unterminated\"`, err: "bad quoted value"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ms, err := ParseMatchers(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, FormatMatchers(ms))
		})
	}
}
