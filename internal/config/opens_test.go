//go:build linux

package config

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// opens counts the opens of the files in one directory, as the kernel sees
// them (inotify IN_OPEN): every way of reading a file opens it, so a count
// is a count of reads, whatever code path does them.
type opens struct {
	t  *testing.T
	fd int
}

// watchOpens starts counting the opens of files in dir.
func watchOpens(t *testing.T, dir string) *opens {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_OPEN); err != nil {
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	return &opens{t: t, fd: fd}
}

// take returns how many times each file (by base name) was opened since the
// last take. The kernel queues an event during the open call, so every open
// that returned before take is counted.
func (o *opens) take() map[string]int {
	o.t.Helper()
	n := map[string]int{}
	buf := make([]byte, 64<<10)
	for {
		k, err := syscall.Read(o.fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return n
		}
		if err != nil {
			o.t.Fatalf("inotify read: %v", err)
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= k; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			for i, b := range name {
				if b == 0 {
					name = name[:i]
					break
				}
			}
			if ev.Mask&syscall.IN_OPEN != 0 && len(name) > 0 {
				n[filepath.Base(string(name))]++
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
