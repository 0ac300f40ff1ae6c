package testbed

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// A server that answers on a port another process holds is not taken for
// the process's own (ErrPortTaken): before, a MinIO whose free port another
// test's MinIO took first was "ready", and its test talked to the other
// server until that one stopped.
func TestWaitHTTPOwnsPort(t *testing.T) {
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(other)
	t.Cleanup(func() { srv.Close() })
	port := strconv.Itoa(other.Addr().(*net.TCPAddr).Port)

	// A process that would listen on the same port but cannot: the other
	// server answers first.
	p := StartProcess(t, "/bin/sleep", []string{"30"}, nil)
	err = p.WaitHTTP("http://127.0.0.1:"+port+"/", 5*time.Second, func(int) bool { return true })
	if !errors.Is(err, ErrPortTaken) {
		t.Fatalf("WaitHTTP = %v, want ErrPortTaken", err)
	}
	// The process's own listener passes: every MinIO and Vault start of the
	// test bed shows it.
}
