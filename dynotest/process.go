package dynotest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// readyTimeout is how long a started server has to answer.
const readyTimeout = 60 * time.Second

// process is a started server with its output in a log file.
type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
	waitErr   error         // set before done is closed
}

// launchReady starts a program and waits until GET url answers 2xx.
func launchReady(dir, name, url, path string, args ...string) (*process, error) {
	p, err := launch(dir, name, path, args...)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(url); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return p, nil
}

// launch starts path with args, its output in dir/name.log.
func launch(dir, name, path string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", path, err), logf.Close())
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = errors.Join(cmd.Wait(), logf.Close())
		close(p.done)
	}()
	return p, nil
}

// waitReady polls url until it answers 2xx, the process exits, or
// readyTimeout passes.
func (p *process) waitReady(url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for !answers(client, url) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v at %s%s", p.name, readyTimeout, url, p.tail())
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v)%s", p.name, p.waitErr, p.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func answers(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// tail returns the end of the process's log, for error messages.
func (p *process) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("; log %s: %v", p.log, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Sprintf("; end of %s:\n%s", p.log, b)
}

// stop kills the process, unless it has exited already, and waits for it.
func (p *process) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	return strconv.Itoa(port), nil
}
