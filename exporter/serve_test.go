package exporter

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestScrapeFormats: the plain text page, the gzip page (one gzip member
// spliced from a live part and the cached page) and protobuf carry the same
// cluster series.
func TestScrapeFormats(t *testing.T) {
	b := startBroker(t)
	kcl := newClient(t, b.Addr())
	adm := kadm.NewClient(kcl)
	createTopic(t, adm, "fmt", 2)
	produce(t, kcl, "fmt", 1, 3, nil)
	commit(t, adm, "fmt-group", "fmt", map[int32]int64{1: 1})
	e := newExporter(t, testConfig(b.Addr()))
	collect(t, e)

	get := func(accept, encoding string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if encoding != "" {
			req.Header.Set("Accept-Encoding", encoding)
		}
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		return rec
	}
	plain := get("", "")
	assert.Empty(t, plain.Header().Get("Content-Encoding"))
	plainMetrics := parseMetrics(t, plain.Body)

	zipped := get("", "gzip, deflate")
	require.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
	zr, err := gzip.NewReader(zipped.Body)
	require.NoError(t, err)
	zr.Multistream(false) // one member, as clients without multistream support read it
	text, err := io.ReadAll(zr)
	require.NoError(t, err, "CRC and length of the spliced member check out")
	require.ErrorIs(t, zr.Reset(zipped.Body), io.EOF, "nothing after the one member")
	zippedMetrics := parseMetrics(t, bytes.NewReader(text))

	proto := get("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "gzip")
	require.Contains(t, proto.Header().Get("Content-Type"), "protobuf")
	zr, err = gzip.NewReader(proto.Body)
	require.NoError(t, err)
	dec := expfmt.NewDecoder(zr, expfmt.Format(proto.Header().Get("Content-Type")))
	protoMetrics := metrics{}
	for {
		var f dto.MetricFamily
		if err := dec.Decode(&f); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		protoMetrics[f.GetName()] = &f
	}

	for name, m := range map[string]metrics{"gzip": zippedMetrics, "protobuf": protoMetrics} {
		for _, fam := range []string{"kafka_topic_partition_current_offset", "kafka_consumergroup_lag", "sluice_consumergroup_status", "sluice_exporter_up"} {
			assert.Equal(t, len(plainMetrics[fam].GetMetric()), len(m[fam].GetMetric()), "%s %s", name, fam)
		}
		assert.Equal(t, 2.0, m.value(t, "kafka_consumergroup_lag", "consumergroup=fmt-group", "topic=fmt", "partition=1"), name)
		assert.Equal(t, 1.0, m.value(t, "sluice_exporter_up"), name)
	}
	assert.Equal(t, 2.0, plainMetrics.value(t, "kafka_consumergroup_lag", "consumergroup=fmt-group", "topic=fmt", "partition=1"))
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                      false,
		"gzip":                  true,
		"deflate, GZIP;q=0.5":   true,
		"gzip;q=0":              false,
		"identity, br":          false,
		"x-gzip":                false,
		"br;q=1.0, gzip; q=0.8": true,
	} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", header)
		assert.Equal(t, want, acceptsGzip(r), "%q", header)
	}
}
