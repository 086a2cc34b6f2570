package testutil

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortIsReservedUntilTheTestEnds(t *testing.T) {
	var port int
	t.Run("holder", func(t *testing.T) {
		port = FreePort(t)
		if port+10000 >= ephemeralStart() {
			t.Fatalf("port %d or its cluster bus port is in the kernel's ephemeral range from %d", port, ephemeralStart())
		}
		if f, ok := lockPort(port); ok {
			f.Close()
			t.Fatalf("port %d could be reserved twice", port)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("the reserved port is not bindable: %v", err)
		}
		l.Close()
	})
	f, ok := lockPort(port)
	if !ok {
		t.Fatalf("port %d is still reserved after its test ended", port)
	}
	f.Close()
}

func TestFreeUDPPortIsBindable(t *testing.T) {
	port := FreeUDPPort(t)
	c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
