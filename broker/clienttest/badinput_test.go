package clienttest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestHeader encodes a v1 request header (key, version, correlation id,
// client id) without the length prefix.
func requestHeader(key, version int16, correlation int32, clientID string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(correlation))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	return append(b, clientID...)
}

// frame prefixes body with its int32 length.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// expectClosed reads from conn until the broker closes it, failing if it stays
// open for 5s or answers with data.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	require.Zero(t, n, "broker answered a bad frame with %x", buf[:n])
	require.Error(t, err)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "connection still open after 5s")
	require.True(t, errors.Is(err, io.EOF) || isConnReset(err), "unexpected read error %v", err)
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestBadFramesCloseOnlyTheirConnection sends malformed frames on raw
// connections and checks each is closed while a franz-go client on its own
// connection keeps producing and consuming.
func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	if isKfake {
		// kfake keeps oversized and negative frames open and panics on an
		// unknown api key; the first three cases pass on it.
		t.Skip("frame limits and connection handling are Sluice's")
	}
	if apiLogPath != "" {
		t.Skip("the CLIENTTEST_API_LOG proxy buffers whole frames, so it cannot pass bad ones through")
	}
	const limit = 1 << 20
	b := startBroker(t, withMaxRequestBytes(limit))
	topic := uniqueName("badinput")
	createTopic(t, b.Addr, topic, 1, nil)
	good := newKgo(t, b.Addr, kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	produced := 0
	goodStillWorks := func(t *testing.T) {
		t.Helper()
		require.NoError(t, good.Ping(testCtx(t)))
		require.NoError(t, good.ProduceSync(testCtx(t), &kgo.Record{Value: []byte("ok")}).FirstErr())
		produced++
		consumeN(t, good, 1, 10*time.Second)
	}
	goodStillWorks(t)

	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"frame shorter than a header", frame([]byte{0, 1, 2})},
		{"client id longer than frame", frame(append(requestHeader(3, 1, 1, ""), 0xff, 0xff)[:10])},
		{"garbage body for Metadata v9", frame(append(requestHeader(3, 9, 1, "clienttest"), 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff))},
		{"frame larger than socket.request.max.bytes", binary.BigEndian.AppendUint32(nil, limit+1)},
		{"negative frame size", binary.BigEndian.AppendUint32(nil, 0xffffffff)},
		{"unknown api key 999", frame(requestHeader(999, 0, 1, "clienttest"))},
		{"negative api key", frame(requestHeader(-5, 0, 1, "clienttest"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
			require.NoError(t, err)
			defer conn.Close()
			_, err = conn.Write(tc.bytes)
			require.NoError(t, err)
			expectClosed(t, conn)
			goodStillWorks(t)
		})
	}
}

// TestApiVersionsUnsupportedVersion sends ApiVersions v99 and expects
// UNSUPPORTED_VERSION (35) in a v0 response that carries the broker's range
// for ApiVersions itself, so the client can retry at a version we serve. Like
// Apache Kafka since 2.4 (KIP-511, ApiVersionsRequest.getErrorResponse), only
// key 18 must be listed; whatever is listed must match the ranges a
// supported version returns.
func TestApiVersionsUnsupportedVersion(t *testing.T) {
	if isKfake {
		t.Skip("kfake closes the connection instead of answering ApiVersions v99")
	}
	b := startBroker(t)
	conn, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = conn.Write(frame(requestHeader(18, 99, 7, "clienttest")))
	require.NoError(t, err)

	var size [4]byte
	_, err = io.ReadFull(conn, size[:])
	require.NoError(t, err)
	n := binary.BigEndian.Uint32(size[:])
	require.Less(t, n, uint32(1<<20))
	body := make([]byte, n)
	_, err = io.ReadFull(conn, body)
	require.NoError(t, err)
	require.Equal(t, uint32(7), binary.BigEndian.Uint32(body[:4]), "correlation id")

	resp := kmsg.NewApiVersionsResponse()
	resp.Version = 0
	require.NoError(t, resp.ReadFrom(body[4:]))
	require.Equal(t, int16(35), resp.ErrorCode, "UNSUPPORTED_VERSION")
	require.NotEmpty(t, resp.ApiKeys)

	cl := newKgo(t, b.Addr)
	okResp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(testCtx(t), cl)
	require.NoError(t, err)
	require.Zero(t, okResp.ErrorCode)
	type span struct{ min, max int16 }
	ranges := func(keys []kmsg.ApiVersionsResponseApiKey) map[int16]span {
		m := map[int16]span{}
		for _, k := range keys {
			m[k.ApiKey] = span{k.MinVersion, k.MaxVersion}
		}
		return m
	}
	got, want := ranges(resp.ApiKeys), ranges(okResp.ApiKeys)
	require.Contains(t, got, int16(18))
	for key, r := range got {
		require.Equal(t, want[key], r, "range of key %d in the error response", key)
	}
	require.Equal(t, int16(0), got[18].min)
	require.GreaterOrEqual(t, got[18].max, int16(3))
}
