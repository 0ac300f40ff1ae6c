// Command pbhelper is the only program in the dockerbed test image (FROM
// scratch, built by the tests, static). It stands in for a shell: tests run
// it as a container's main process ("pbhelper sleep") and through exec
// ("pbhelper do gen=1000 stderr=oops exit=3").
//
// Operations of "do", run in order:
//
//	gen=N          write N pseudo-random bytes (fixed seed) to stdout
//	gensum=N       write the hex SHA-256 of what gen=N writes, and a newline
//	cat=PATH       copy a file to stdout
//	echo=TEXT      write TEXT and a newline to stdout
//	getenv=NAME    write the value of NAME and a newline to stdout
//	stderr=TEXT    write TEXT and a newline to stderr
//	stderrgen=N    write N bytes of numbered lines to stderr
//	write=PATH:TXT create PATH (and its directories) holding TXT
//	hostname       write the hostname and a newline to stdout
//	sleep=DUR      sleep for a Go duration ("30s")
//	exit=CODE      exit now with CODE
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: pbhelper sleep | pbhelper do OP...")
	}
	switch os.Args[1] {
	case "sleep":
		// PID 1 in a container gets no default signal handlers: stop on TERM/INT.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	case "do":
		for _, op := range os.Args[2:] {
			run(op)
		}
	default:
		fail("pbhelper: unknown command " + strconv.Quote(os.Args[1]))
	}
}

func run(op string) {
	name, arg, _ := strings.Cut(op, "=")
	switch name {
	case "gen":
		check(gen(os.Stdout, size(arg)))
	case "gensum":
		h := sha256.New()
		check(gen(h, size(arg)))
		fmt.Println(hex.EncodeToString(h.Sum(nil)))
	case "cat":
		f, err := os.Open(arg)
		check(err)
		_, err = io.Copy(os.Stdout, f)
		check(err)
		f.Close()
	case "echo":
		fmt.Println(arg)
	case "getenv":
		fmt.Println(os.Getenv(arg))
	case "stderr":
		fmt.Fprintln(os.Stderr, arg)
	case "stderrgen":
		n := size(arg)
		for i := int64(0); n > 0; i++ {
			line := fmt.Sprintf("stderr line %08d\n", i)
			if int64(len(line)) > n {
				line = line[:n]
			}
			os.Stderr.WriteString(line)
			n -= int64(len(line))
		}
	case "write":
		path, text, _ := strings.Cut(arg, ":")
		check(os.MkdirAll(filepath.Dir(path), 0o755))
		check(os.WriteFile(path, []byte(text), 0o644))
	case "hostname":
		h, err := os.Hostname()
		check(err)
		fmt.Println(h)
	case "sleep":
		d, err := time.ParseDuration(arg)
		check(err)
		time.Sleep(d)
	case "exit":
		code, err := strconv.Atoi(arg)
		check(err)
		os.Exit(code)
	default:
		fail("pbhelper: unknown op " + strconv.Quote(op))
	}
}

// gen writes n bytes from a PCG generator with a fixed seed, 64 KiB at a time.
func gen(w io.Writer, n int64) error {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 64<<10)
	for n > 0 {
		for i := 0; i < len(buf); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return nil
}

func size(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	check(err)
	return n
}

func check(err error) {
	if err != nil {
		fail("pbhelper: " + err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(125)
}
