package main

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// closeEachSecondRequest is a TCP proxy in front of addr that passes each
// connection's first request and its answer, then closes the connection
// when the client writes on it again: an edge whose idle timeout ran out
// just as the next poll went out. It returns its address and the count of
// connections it closed under a request.
func closeEachSecondRequest(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var cuts atomic.Int64
	var wg sync.WaitGroup
	relay := func(down net.Conn) {
		defer down.Close()
		up, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		var answered atomic.Bool
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					answered.Store(true)
					if _, werr := down.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					down.Close()
					return
				}
			}
		})
		buf := make([]byte, 4096)
		for {
			n, err := down.Read(buf)
			if n > 0 && answered.Load() {
				cuts.Add(1)
				return
			}
			if n > 0 {
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { relay(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), &cuts
}

// TestClientResendsOnClosedConnection: a GET whose kept-alive connection
// closes under it goes out again at once on a new connection and is
// counted; a POST is not sent again (the generator's sends carry no id).
func TestClientResendsOnClosedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"ok":true}`) }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr, cuts := closeEachSecondRequest(t, ln.Addr().String())

	cl := newClient(addr, true)
	defer cl.close()
	var req fasthttp.Request
	var resp fasthttp.Response
	for i := range 5 {
		req.Reset()
		req.SetRequestURI("/v1/streams/s/reactions?since=1")
		if _, err := cl.do(&req, &resp); err != nil || resp.StatusCode() != fasthttp.StatusOK {
			t.Fatalf("poll %d: %v, status %d; want the poll resent and answered", i, err, resp.StatusCode())
		}
	}
	if cl.retries != 4 || cuts.Load() != 4 {
		t.Fatalf("%d polls resent for %d connections closed under a poll; want 4 and 4 (every poll after the first)", cl.retries, cuts.Load())
	}
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("/v1/streams/s/reactions")
	req.SetBodyString(`{"emoji":"love"}`)
	if _, err := cl.do(&req, &resp); err == nil {
		t.Fatal("a send on a connection closed under it was answered; want the error, not a second send")
	}
	if cl.retries != 4 {
		t.Fatalf("%d resent after a send; want the send not resent", cl.retries)
	}
}
