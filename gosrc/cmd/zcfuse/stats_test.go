package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

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
