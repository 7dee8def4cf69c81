package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nobody = 65534

// asNobody runs a command as uid/gid 65534 with no supplementary groups.
func asNobody(t *testing.T, name string, args ...string) (code int, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}},
	}
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v as uid %d hangs", name, args, nobody)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), b.String()
		}
		t.Fatalf("%s as uid %d: %v", name, nobody, err)
	}
	return 0, b.String()
}

// TestAllowOther: with --allow-other (which implies default_permissions)
// an unprivileged user can read a 0644 file through the mount but gets
// EACCES on a root-owned 0600 one; without it, the user cannot use the
// mount at all.
func TestAllowOther(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		dir := scratchDir(t)
		backing := mkdir(t, filepath.Join(dir, "backing"))
		writeFile(t, filepath.Join(backing, "public"), []byte("public\n"), 0o644)
		writeFile(t, filepath.Join(backing, "secret"), []byte("secret\n"), 0o600)
		for _, f := range []string{"public", "secret"} {
			if err := os.Chown(filepath.Join(backing, f), 0, 0); err != nil {
				t.Fatal(err)
			}
		}

		s := startMount(t, mountOpts{transport: tr, backing: backing, mountpoint: mkdir(t, filepath.Join(dir, "mnt")),
			args: []string{"--allow-other"}})
		if code, out := asNobody(t, "cat", filepath.Join(s.Mnt, "public")); code != 0 || out != "public\n" {
			t.Errorf("uid %d reading the 0644 file: exit %d, %q; want success", nobody, code, out)
		}
		code, out := asNobody(t, "cat", filepath.Join(s.Mnt, "secret"))
		if code == 0 || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %d reading the root-owned 0600 file: exit %d, %q; want EACCES (Permission denied)", nobody, code, out)
		}
		if strings.Contains(out, "secret\n") {
			t.Errorf("uid %d read the secret", nobody)
		}
		if b, err := os.ReadFile(filepath.Join(s.Mnt, "secret")); err != nil || string(b) != "secret\n" {
			t.Errorf("root reading the 0600 file: %q, %v", b, err)
		}
		s.stop(syscall.SIGTERM)

		// Control: without --allow-other only the mounting user may enter.
		s = startMount(t, mountOpts{transport: tr, backing: backing, mountpoint: s.Mnt})
		if code, out := asNobody(t, "cat", filepath.Join(s.Mnt, "public")); code == 0 || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid %d without --allow-other: exit %d, %q; want Permission denied", nobody, code, out)
		}
		s.stop(syscall.SIGTERM)
	})
}
