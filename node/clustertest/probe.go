package clustertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Send delivers one message to node i over SMTP on a fresh connection
// (EHLO, MAIL, RCPT for each recipient, DATA with dot-stuffing) and
// returns the final reply's code and text. timeout bounds each reply; the
// reply to the final dot may take dotTimeout.
func (c *Cluster) Send(i int, from string, rcpts []string, msg []byte, timeout, dotTimeout time.Duration) (int, string, error) {
	conn, err := net.DialTimeout("tcp", c.Nodes[i].Addr(PortSMTP), timeout)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	bw := bufio.NewWriterSize(conn, 64<<10)
	expect := func(d time.Duration) (int, string, error) {
		conn.SetReadDeadline(time.Now().Add(d))
		code, lines, err := readReply(br)
		return code, strings.Join(lines, " | "), err
	}
	cmd := func(line string) (int, string, error) {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(bw, line+"\r\n"); err != nil {
			return 0, "", err
		}
		if err := bw.Flush(); err != nil {
			return 0, "", err
		}
		return expect(timeout)
	}
	if code, text, err := expect(timeout); err != nil || code != 220 {
		return code, text, err
	}
	steps := []string{"EHLO mta.remote.test", "MAIL FROM:<" + from + ">"}
	for _, r := range rcpts {
		steps = append(steps, "RCPT TO:<"+r+">")
	}
	steps = append(steps, "DATA")
	for _, s := range steps {
		code, text, err := cmd(s)
		if err != nil || code >= 400 {
			return code, text, err
		}
	}
	conn.SetWriteDeadline(time.Now().Add(dotTimeout))
	for len(msg) > 0 {
		line := msg
		if k := bytes.IndexByte(msg, '\n'); k >= 0 {
			line = msg[:k+1]
		}
		msg = msg[len(line):]
		if len(line) > 0 && line[0] == '.' {
			bw.WriteByte('.')
		}
		if _, err := bw.Write(line); err != nil {
			return 0, "", err
		}
	}
	if _, err := bw.WriteString(".\r\n"); err != nil {
		return 0, "", err
	}
	if err := bw.Flush(); err != nil {
		return 0, "", err
	}
	code, text, err := expect(dotTimeout)
	cmd("QUIT")
	return code, text, err
}

// Metric returns the sum of every sample of the Prometheus metric name on
// node i's /metrics (0 when absent).
func (c *Cluster) Metric(i int, name string) (float64, error) {
	resp, err := c.http.Get("http://" + c.Nodes[i].Addr(PortHTTP) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET /metrics of %s: %s", c.Nodes[i].ID, resp.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %v", name, line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// PID returns node i's process id (ip netns exec execs the binary), or 0
// when it does not run.
func (c *Cluster) PID(i int) int {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	select {
	case <-n.done:
		return 0
	default:
	}
	return n.cmd.Process.Pid
}

// Memory is a process's resident set from /proc/PID/status, in bytes:
// VmRSS now and VmHWM, the peak since the process started.
type Memory struct{ RSS, HWM int64 }

// Mem reads node i's Memory.
func (c *Cluster) Mem(i int) (Memory, error) {
	pid := c.PID(i)
	if pid == 0 {
		return Memory{}, fmt.Errorf("%s is not running", c.Nodes[i].ID)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb << 10
		case "VmHWM:":
			m.HWM = kb << 10
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// Loopback fetches path from node i's HTTP listener as a client on the
// node's own loopback (from inside its network namespace, source address
// 127.0.0.1): what /debug/pprof/ requires.
func (c *Cluster) Loopback(i int, path string) ([]byte, error) {
	n := c.Nodes[i]
	out, err := exec.Command("ip", "netns", "exec", n.NS, "curl", "-sS", "--fail", "--max-time", "30",
		"--interface", "127.0.0.1", "http://"+n.Addr(PortHTTP)+path).Output()
	if err != nil {
		return nil, fmt.Errorf("GET %s from %s's loopback: %w", path, n.ID, err)
	}
	return out, nil
}

// GoMemory is a node's Go runtime memory and Pebble's caches and
// memtables (all stores), from its /metrics.
type GoMemory struct {
	HeapInuse, HeapIdle, HeapReleased, Sys int64
	PebbleCache, PebbleMemtables           int64
}

// GoMem reads node i's Go runtime memory from /metrics.
func (c *Cluster) GoMem(i int) (GoMemory, error) {
	resp, err := c.http.Get("http://" + c.Nodes[i].Addr(PortHTTP) + "/metrics")
	if err != nil {
		return GoMemory{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return GoMemory{}, err
	}
	var m GoMemory
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuse = int64(v)
		case "go_memstats_heap_idle_bytes":
			m.HeapIdle = int64(v)
		case "go_memstats_heap_released_bytes":
			m.HeapReleased = int64(v)
		case "go_memstats_sys_bytes":
			m.Sys = int64(v)
		}
		if strings.HasPrefix(f[0], "continuum_pebble_memory_bytes{") {
			if strings.Contains(f[0], `kind="cache"`) {
				m.PebbleCache += int64(v)
			} else {
				m.PebbleMemtables += int64(v)
			}
		}
	}
	return m, nil
}
