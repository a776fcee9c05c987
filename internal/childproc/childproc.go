// Package childproc starts and stops the binaries the bench and the fault
// suite run as separate processes (the consumer, the simulator), so that each
// one's CPU time, memory and exit are its own.
package childproc

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is this process's environment without WXTERM_ and WXSIM_ variables,
// which a child would read as its flags, followed by extra.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WXTERM_") || strings.HasPrefix(kv, "WXSIM_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Proc is a started child process.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	Started time.Time
	Ended   time.Time // when Wait returned; read after Done
	done    chan struct{}
	err     error // after done

	mu       sync.Mutex
	expected bool // the exit was asked for (Stop or Kill)
}

// Start starts cmd, whose Env is Env() unless set, and calls onExit (if not
// nil) once it has exited, before Done is closed.
func Start(name string, cmd *exec.Cmd, onExit func()) (*Proc, error) {
	if cmd.Env == nil {
		cmd.Env = Env()
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Name: name, Cmd: cmd, Started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.Ended = time.Now()
		if onExit != nil {
			onExit()
		}
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is what waiting for the process returned; valid after Done.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	p.expect()
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM, waits up to d, then kills; graceful reports an exit
// within d.
func (p *Proc) Stop(d time.Duration) (graceful bool) {
	if p.Exited() {
		return true
	}
	p.expect()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		p.Kill()
		return false
	}
}

// Wait waits for the process to exit on its own, or stops it when ctx ends.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.Stop(5 * time.Second)
		return ctx.Err()
	}
}

// ExitedOnItsOwn reports an exit nobody asked for, and its error.
func (p *Proc) ExitedOnItsOwn() (bool, error) {
	if !p.Exited() {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.expected, p.err
}

func (p *Proc) expect() {
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
}
