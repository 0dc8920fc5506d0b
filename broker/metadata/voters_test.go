package metadata

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseVoters(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Voter
		wantErr string
	}{
		{in: "1@127.0.0.1:9192", want: []Voter{{1, "127.0.0.1:9192"}}},
		{in: "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194",
			want: []Voter{{1, "127.0.0.1:9192"}, {2, "127.0.0.1:9193"}, {3, "127.0.0.1:9194"}}},
		{in: " 0@localhost:1 , 7@[::1]:9192 ", want: []Voter{{0, "localhost:1"}, {7, "[::1]:9192"}}},
		{in: "", wantErr: "empty list"},
		{in: "127.0.0.1:9192", wantErr: "want id@host:port"},
		{in: "x@127.0.0.1:9192", wantErr: "not a non-negative integer"},
		{in: "-1@127.0.0.1:9192", wantErr: "not a non-negative integer"},
		{in: "1@127.0.0.1", wantErr: "missing port"},
		{in: "1@:9192", wantErr: "no host"},
		{in: "1@127.0.0.1:0", wantErr: "not in 1-65535"},
		{in: "1@127.0.0.1:70000", wantErr: "not in 1-65535"},
		{in: "1@127.0.0.1:9192,1@127.0.0.1:9193", wantErr: "node id 1 appears more than once"},
		{in: "1@127.0.0.1:9192,2@127.0.0.1:9192", wantErr: "address 127.0.0.1:9192 appears more than once"},
		{in: "1@127.0.0.1:9192,", wantErr: "entry 2"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVoters(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
