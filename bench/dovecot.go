package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dovecot is a private Dovecot (Debian's dovecot-imapd and dovecot-lmtpd)
// in a directory of its own: its own configuration with Dovecot's defaults
// (fsync included: mail_fsync = optimized), Maildir, a passwd-file user
// database. The configuration follows node/migrate's test instance.
type Dovecot struct {
	Dir        string
	IMAP, LMTP string // listen addresses
	cmd        *exec.Cmd
	exited     chan struct{}
}

// DovecotConfig is the dovecot.conf StartDovecot writes (dir, addresses,
// the unprivileged user it runs mail processes as).
func DovecotConfig(dir, imapAddr, lmtpAddr, login, group string, uid, gid int) string {
	host, imapPort, _ := net.SplitHostPort(imapAddr)
	_, lmtpPort, _ := net.SplitHostPort(lmtpAddr)
	return fmt.Sprintf(`# Written by continuum bench compare: Dovecot's defaults except where noted.
protocols = imap lmtp
listen = %[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = %[5]s
default_internal_user = %[5]s
default_internal_group = %[6]s
first_valid_uid = %[7]d
first_valid_gid = %[8]d
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}
namespace inbox {
  inbox = yes
  separator = /
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
service imap-login {
  inet_listener imap {
    address = %[2]s
    port = %[3]s
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
# Not a default: 128 concurrent LMTP sessions need 128 lmtp processes
# (one per connection; the default limit is 100).
service lmtp {
  process_limit = 512
  inet_listener lmtp {
    address = %[2]s
    port = %[4]s
  }
}
service anvil {
  chroot =
}
`, dir, host, imapPort, lmtpPort, login, group, uid, gid)
}

// StartDovecot starts Dovecot in dir with the given users (all with
// password), listening on imapAddr and lmtpAddr.
func StartDovecot(dir, imapAddr, lmtpAddr string, users []string, password string) (*Dovecot, error) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		return nil, errors.New("dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
	}
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		return nil, errors.New("dovecot's LMTP server not installed (apt-get install dovecot-lmtpd)")
	}
	// Dovecot's unprivileged processes must reach the directory.
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			_ = os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("running as root and no user nobody: %w", err)
		}
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	var passwd strings.Builder
	for _, name := range users {
		home := filepath.Join(dir, "home", name)
		if err := os.MkdirAll(home, 0o755); err != nil {
			return nil, err
		}
		_ = os.Chown(home, uid, gid)
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s:%d:%d::%s::\n", name, password, uid, gid, home)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd.String()), 0o644); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(DovecotConfig(dir, imapAddr, lmtpAddr, u.Username, g.Name, uid, gid)), 0o644); err != nil {
		return nil, err
	}
	d := &Dovecot{Dir: dir, IMAP: imapAddr, LMTP: lmtpAddr, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "-F", "-c", conf)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "dovecot.stderr"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	if err := waitListen(d.exited, 15*time.Second, imapAddr, lmtpAddr); err != nil {
		d.Stop()
		b, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		return nil, fmt.Errorf("dovecot: %w\n%s", err, b)
	}
	return d, nil
}

// Stop stops Dovecot (SIGTERM, then SIGKILL to its process group).
func (d *Dovecot) Stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
}

// waitListen waits until every address accepts connections.
func waitListen(exited <-chan struct{}, timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return errors.New("exited before listening")
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("nothing listens on %s after %v", a, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
