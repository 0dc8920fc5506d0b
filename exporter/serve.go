package exporter

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// A scrape must stay fast with 10,000 partitions and 1,000 groups, which is
// some 200,000 series and 20 MB of text: gathering and encoding that many
// const metrics takes longer than the 100 ms a scrape may, and compressing
// it for Prometheus' Accept-Encoding: gzip longer still. So the cluster part
// of /metrics, which changes only once per collection, is gathered, encoded
// in the text format and DEFLATE-compressed right after each collection,
// outside any scrape. A scrape gathers only the exporter's own metrics (a few
// dozen, among them sluice_exporter_collection_age_seconds, which must be
// computed at scrape time) and writes them before the cached page. A gzip
// response is one valid gzip member: the live part compressed and
// sync-flushed (byte-aligned, not final), then the cached compressed page
// (ending in the final block), then the CRC-32 and length of the whole text.
// Formats other than the text format (protobuf) are encoded at scrape time
// from the snapshot, still without touching the cluster.

// page is the cluster part of /metrics, encoded once per collection.
type page struct {
	text    []byte // the text format, version 0.0.4
	deflate []byte // text as raw DEFLATE ending in a final block
}

// buildPage gathers g and encodes it.
func buildPage(g prometheus.Gatherer) (*page, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, err
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	_, _ = fw.Write(text.Bytes())
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return &page{text: text.Bytes(), deflate: comp.Bytes()}, nil
}

// serveMetrics answers GET /metrics from the exporter's registry and the
// cached page.
func (e *Exporter) serveMetrics(w http.ResponseWriter, r *http.Request) {
	live, err := e.reg.Gather()
	if err != nil {
		http.Error(w, fmt.Sprintf("gathering metrics: %v", err), http.StatusInternalServerError)
		return
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	gzipped := acceptsGzip(r)
	h := w.Header()
	h.Set("Content-Type", string(format))
	if gzipped {
		h.Set("Content-Encoding", "gzip")
	}
	h.Add("Vary", "Accept-Encoding")

	if format.FormatType() != expfmt.TypeTextPlain {
		cluster, err := e.snapReg.Gather()
		if err != nil {
			http.Error(w, fmt.Sprintf("gathering metrics: %v", err), http.StatusInternalServerError)
			return
		}
		out := io.Writer(w)
		var fw *flateGzip
		if gzipped {
			fw = newFlateGzip(w)
			out = fw
		}
		enc := expfmt.NewEncoder(out, format)
		for _, f := range append(live, cluster...) {
			if err := enc.Encode(f); err != nil {
				return // the client went away
			}
		}
		if fw != nil {
			_ = fw.finish(nil)
		}
		return
	}

	var lb bytes.Buffer
	enc := expfmt.NewEncoder(&lb, format)
	for _, f := range live {
		_ = enc.Encode(f)
	}
	pg := e.page.Load()
	if !gzipped {
		_, _ = w.Write(lb.Bytes())
		if pg != nil {
			_, _ = w.Write(pg.text)
		}
		return
	}
	fw := newFlateGzip(w)
	_, _ = fw.Write(lb.Bytes())
	_ = fw.finish(pg)
}

// acceptsGzip reports whether the request accepts gzip with a non-zero
// quality.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// flateGzip writes one gzip member (RFC 1952) whose DEFLATE stream may end in
// a precompressed page.
type flateGzip struct {
	w    io.Writer
	fw   *flate.Writer
	crc  uint32
	size uint32
	err  error
}

func newFlateGzip(w io.Writer) *flateGzip {
	// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown
	_, err := w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255})
	fw, _ := flate.NewWriter(w, flate.BestSpeed)
	return &flateGzip{w: w, fw: fw, err: err}
}

func (g *flateGzip) Write(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	g.crc = crc32.Update(g.crc, crc32.IEEETable, p)
	g.size += uint32(len(p))
	n, err := g.fw.Write(p)
	g.err = err
	return n, err
}

// finish ends the DEFLATE stream, with pg's compressed text if pg is not
// nil, and writes the trailer.
func (g *flateGzip) finish(pg *page) error {
	if g.err != nil {
		return g.err
	}
	if pg == nil {
		g.err = g.fw.Close()
	} else {
		// A sync flush ends the live part on a byte boundary with a non-final
		// block, so the page's blocks can follow.
		if g.err = g.fw.Flush(); g.err == nil {
			_, g.err = g.w.Write(pg.deflate)
		}
		g.crc = crc32.Update(g.crc, crc32.IEEETable, pg.text)
		g.size += uint32(len(pg.text))
	}
	if g.err != nil {
		return g.err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], g.crc)
	binary.LittleEndian.PutUint32(trailer[4:], g.size)
	_, g.err = g.w.Write(trailer[:])
	return g.err
}
