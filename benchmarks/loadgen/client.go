package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// requestTimeout bounds one request, from dial to the last byte read.
const requestTimeout = 10 * time.Second

// client is one viewer's or sender's HTTP/1.1 connection. It owns its
// socket, as a phone does, instead of borrowing one from a pool, and it
// counts every byte that crosses the socket, headers included.
type client struct {
	addr string
	// keepAlive false opens a new connection per request and closes it once
	// the answer is read, as a phone whose connection died does: the
	// request does not ask for Connection: close, so the answer is the same
	// bytes a keep-alive client gets.
	keepAlive bool

	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	read int64 // bytes read from every socket this client opened
	sent int64
	// retries counts requests sent again, at once, on a new connection
	// because the kept-alive one they went out on turned out closed.
	retries int
}

func newClient(addr string, keepAlive bool) *client {
	return &client{addr: addr, keepAlive: keepAlive}
}

// countingConn counts the bytes a client reads and writes.
type countingConn struct {
	net.Conn
	c *client
}

func (cc countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.read += int64(n)
	return n, err
}

func (cc countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.sent += int64(n)
	return n, err
}

// wire is what one exchange put on the socket.
type wire struct {
	read, sent int64
}

// do sends req and reads its response into resp. Requests on one client
// never overlap, so the bytes read between the request and the end of its
// response are exactly that response.
//
// A GET (a poll, a watch) that went out on a kept-alive connection and got
// not one byte back is sent again once, at once, on a new connection: an
// edge closes idle connections (stock Varnish after 5 s, nginx after
// 75 s), and a close that crossed the request on the wire is no failure
// of the server, as browsers and Go's net/http treat it. The generator's
// sends carry no id, so they are not repeated: one may have been counted.
func (c *client) do(req *fasthttp.Request, resp *fasthttp.Response) (wire, error) {
	read, sent := c.read, c.sent
	reused := c.conn != nil
	err := c.exchange(req, resp)
	if err != nil && reused && c.read == read && req.Header.IsGet() && !isTimeout(err) {
		c.close()
		c.retries++
		err = c.exchange(req, resp)
	}
	w := wire{read: c.read - read, sent: c.sent - sent}
	if err != nil || !c.keepAlive || resp.ConnectionClose() {
		c.close()
	}
	return w, err
}

func (c *client) exchange(req *fasthttp.Request, resp *fasthttp.Response) error {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return err
		}
	}
	req.Header.SetHost(c.addr)
	if err := c.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return err
	}
	if err := req.Write(c.bw); err != nil {
		return fmt.Errorf("cannot send request: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("cannot send request: %w", err)
	}
	if err := resp.Read(c.br); err != nil {
		return fmt.Errorf("cannot read response: %w", err)
	}
	return nil
}

// isTimeout reports whether err is the request's deadline passing: a
// server too slow to answer, not a connection closed under the request.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *client) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, requestTimeout)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", c.addr, err)
	}
	cc := countingConn{Conn: conn, c: c}
	if c.br == nil {
		// Poll answers and watch answers fit in a few hundred bytes.
		c.br = bufio.NewReaderSize(cc, 4096)
		c.bw = bufio.NewWriterSize(cc, 1024)
	} else {
		c.br.Reset(cc)
		c.bw.Reset(cc)
	}
	c.conn = conn
	return nil
}

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
