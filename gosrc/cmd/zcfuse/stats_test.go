package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/zcfuse/zcfuse/gosrc/control"
	"github.com/zcfuse/zcfuse/gosrc/server"
)

// Every counter printStats names exists, and every other counter of the
// stats model is printed too, by its name.
func TestPrintStatsShowsEveryCounter(t *testing.T) {
	names := server.CounterNames()
	for _, n := range namedCounters {
		if !slices.Contains(names, n) {
			t.Errorf("printStats names %q, which is no counter", n)
		}
	}
	var st server.Stats
	st.HandedOffInvalidations = 12345
	st.FS.HandleOpens = 678
	var out bytes.Buffer
	if err := printStats(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"handed off invalidations  12345", "fs.handle opens", "678"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// usageOf is a user's usage against the default limits.
func usageOf(uid uint32, sessions, openFiles uint64) server.UserStats {
	l := control.DefaultLimits
	return server.UserStats{
		UserUsage: control.UserUsage{UID: uid, Sessions: sessions, ArenaBytes: 3 << 20,
			SessionsLimit: uint64(l.SessionsPerUser), ArenasLimit: uint64(l.ArenasPerUser), ArenaBytesLimit: l.ArenaBytesPerUser,
			RegisteredBytesLimit: l.RegisteredBytesPerUser, AttachedFilesLimit: uint64(l.AttachedFilesPerUser)},
		OpenFiles: openFiles, OpenFilesLimit: uint64(l.OpenFilesPerUser),
	}
}

// The full view ends with every user's usage under the per-user limits;
// with nobody holding anything it says so.
func TestPrintStatsUsers(t *testing.T) {
	st := server.Stats{View: server.ViewFull, Backing: "/srv/data", PID: 4242,
		Users: []server.UserStats{usageOf(0, 1, 7), usageOf(65534, 2, 4096)}, UsersOmitted: 3}
	st.FS.OpenFilesMaxUser, st.FS.OpenFilesRefused = 4096, 9
	var out bytes.Buffer
	if err := printStats(&out, st); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	lines := strings.Split(got, "\n")
	row := func(prefix string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == prefix {
				return f
			}
		}
		t.Fatalf("no line starting %q:\n%s", prefix, got)
		return nil
	}
	for _, want := range []string{"/srv/data", "4242", "usage by user:", "connections before Hello", "open files",
		"at most 4096 of one user; 9 refused", "3 more users"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if r := row("limit"); !slices.Contains(r, "4096") || !slices.Contains(r, "64") || !slices.Contains(r, "GiB") {
		t.Errorf("limit row %q", r)
	}
	if r := row("65534"); r[1] != "2" || r[len(r)-1] != "4096" || !slices.Contains(r, "MiB") {
		t.Errorf("uid 65534's row %q", r)
	}
	if r := row("0"); r[1] != "1" || r[len(r)-1] != "7" {
		t.Errorf("uid 0's row %q", r)
	}
	if strings.Contains(got, "users omitted") {
		t.Errorf("users_omitted printed as a bare counter:\n%s", got)
	}

	out.Reset()
	if err := printStats(&out, server.Stats{View: server.ViewFull}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "usage by user: nobody holds anything") {
		t.Errorf("no users:\n%s", out.String())
	}
}

// A user's view prints that user's usage against its limits and the
// transport, not a full listing of zeros.
func TestPrintStatsUserView(t *testing.T) {
	u := usageOf(65534, 1, 12)
	st := server.Stats{View: server.ViewUser, User: &u, ReadOnly: true}
	st.Transport = "uring"
	var out bytes.Buffer
	if err := printStats(&out, st); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"uid 65534", "uring", "read-only", "used", "limit", "connections before Hello"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, absent := range []string{"server pid", "backing", "bytes read", "requests by opcode", "zero-copy bytes", "usage by user"} {
		if strings.Contains(got, absent) {
			t.Errorf("a user's view prints %q:\n%s", absent, got)
		}
	}
	fields := func(prefix string) []string {
		for _, l := range strings.Split(got, "\n") {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(strings.TrimPrefix(l, prefix))
			}
		}
		t.Fatalf("no %q line:\n%s", prefix, got)
		return nil
	}
	if f := fields("open files"); !slices.Equal(f, []string{"12", "4096"}) {
		t.Errorf("open files: %q, want 12 of 4096", f)
	}
	if f := fields("sessions"); !slices.Equal(f, []string{"1", "32"}) {
		t.Errorf("sessions: %q, want 1 of 32", f)
	}
	if f := fields("arena bytes"); !slices.Equal(f, []string{"3", "MiB", "64", "GiB"}) {
		t.Errorf("arena bytes: %q, want 3 MiB of 64 GiB", f)
	}
	if f := fields("connections before Hello"); !slices.Equal(f, []string{"0", "-"}) {
		t.Errorf("connections before Hello: %q, want 0 and no limit of its own", f)
	}
}
