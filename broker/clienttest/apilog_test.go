//go:build !kfake

package clienttest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
)

var apiLogMu sync.Mutex

// startAPIRecorder listens on loopback and forwards each connection to
// target, appending "test clientID key version" for every request frame to
// apiLogPath. It returns the proxy address; listener and connections close at
// cleanup.
func startAPIRecorder(t testing.TB, target func() string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	name := t.Name()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target())
			if err != nil {
				client.Close()
				continue
			}
			track(client)
			track(server)
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(client, server)
				client.Close()
			}()
			go func() {
				defer wg.Done()
				defer server.Close()
				recordFrames(name, client, server)
			}()
		}
	}()
	return ln.Addr().String()
}

// recordFrames copies request frames from client to server, logging each
// frame's header; a frame it cannot parse switches it to a plain copy.
func recordFrames(test string, client io.Reader, server io.Writer) {
	var size [4]byte
	for {
		if _, err := io.ReadFull(client, size[:]); err != nil {
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 10 || n > 64<<20 {
			_, _ = server.Write(size[:])
			_, _ = io.Copy(server, client)
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(client, body); err != nil {
			return
		}
		key := int16(binary.BigEndian.Uint16(body[0:]))
		version := int16(binary.BigEndian.Uint16(body[2:]))
		idLen := int(int16(binary.BigEndian.Uint16(body[8:])))
		clientID := "-"
		if idLen > 0 && 10+idLen <= len(body) {
			clientID = string(body[10 : 10+idLen])
		}
		apiLogMu.Lock()
		if f, err := os.OpenFile(apiLogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s %q %d %d\n", test, clientID, key, version)
			f.Close()
		}
		apiLogMu.Unlock()
		if _, err := server.Write(append(size[:], body...)); err != nil {
			return
		}
	}
}
