package wire

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzDecode")

// FuzzDecode feeds Decode arbitrary bytes and fd counts. It must never
// panic, and whatever it accepts must encode back to the same bytes
// (the encoding is canonical) and decode again to an equal message.
// The kept corpus is testdata/fuzz/FuzzDecode (go test -update-corpus
// rewrites the generated seeds; crashers that the fuzzer found stay).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		m, err := Decode(b, nfds)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned both %#v and %v", m, err)
			}
			return
		}
		if got := m.Type().FDs(); got != nfds {
			t.Fatalf("accepted %v with %d fds, type takes %d", m.Type(), nfds, got)
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", m, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		m2, err := Decode(enc, nfds)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decoded %#v, %v; want %#v", m2, err, m)
		}
	})
}

// seeds returns named inputs for the corpus: every sample message, and
// broken variants of them.
func seeds() map[string]struct {
	b    []byte
	nfds int
} {
	out := map[string]struct {
		b    []byte
		nfds int
	}{}
	add := func(name string, b []byte, nfds int) {
		out[name] = struct {
			b    []byte
			nfds int
		}{b, nfds}
	}
	for i, m := range samples() {
		b, err := Encode(m)
		if err != nil {
			panic(err)
		}
		name := fmt.Sprintf("valid-%02d-%v", i, m.Type())
		add(name, b, m.Type().FDs())
		if m.Type().FDs() == 0 {
			add(fmt.Sprintf("broken-%02d-%v-extra-fd", i, m.Type()), b, 1)
		} else {
			add(fmt.Sprintf("broken-%02d-%v-no-fd", i, m.Type()), b, 0)
		}
		if len(b) > HeaderSize {
			add(fmt.Sprintf("broken-%02d-%v-short-body", i, m.Type()), b[:len(b)-1], m.Type().FDs())
		}
	}
	hello, _ := Encode(&Hello{Version: 1, PID: 1})
	mod := func(off int, v byte) []byte { c := bytes.Clone(hello); c[off] = v; return c }
	add("broken-empty", nil, 0)
	add("broken-short-header", hello[:7], 0)
	add("broken-magic", mod(3, 'X'), 0)
	add("broken-version", mod(4, 2), 0)
	add("broken-reserved", mod(14, 1), 0)
	add("broken-length", mod(8, 200), 0)
	add("broken-unknown-type", mod(6, 77), 0)
	add("broken-opqueue-in-hello-body", mod(6, byte(TypeOpQueue)), 2)
	add("broken-oversized", frame(TypeError, make([]byte, MaxBody+1)), 0)
	add("broken-error-string-too-long", frame(TypeError, append([]byte{5, 0, 0, 0}, bytes.Repeat([]byte("y"), MaxErrorMessage+1)...)), 0)
	add("broken-error-errno-0", frame(TypeError, []byte{0, 0, 0, 0, 'h', 'i'}), 0)
	add("broken-bool-2", frame(TypeShareArenaReply, []byte{1, 0, 0, 0, 2}), 0)
	add("broken-negative-fds", hello, -1)
	return out
}

func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, s := range seeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nint(%d)\n", s.b, s.nfds)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != body {
			t.Errorf("seed %s is missing or stale: go test ./gosrc/wire -run TestSeedCorpus -update-corpus", path)
		}
		_, err = Decode(s.b, s.nfds)
		if valid := name[:5] == "valid"; valid != (err == nil) {
			t.Errorf("seed %s: Decode error %v", name, err)
		}
	}
}
