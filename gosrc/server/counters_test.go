package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// Every number of Stats's JSON is a counter with the same name and value,
// and nothing else is: a field the walk missed, or one it invented, fails
// here. Stats is filled by reflection, so this holds for fields added
// later too.
func TestCountersAreTheJSONNumbers(t *testing.T) {
	var st Stats
	fill(reflect.ValueOf(&st).Elem(), new(uint64))
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstJSON(t, b, st.Counters())
	names := CounterNames()
	got := st.Counters()
	if len(names) != len(got) {
		t.Fatalf("CounterNames has %d names, Counters %d counters", len(names), len(got))
	}
	for i, c := range got {
		if names[i] != c.Name {
			t.Errorf("counter %d: CounterNames says %q, Counters %q", i, names[i], c.Name)
		}
	}
}

// The names existing users read stay as they are, in struct order.
func TestCounterNamesKeepTheirJSONNames(t *testing.T) {
	pos := map[string]int{}
	for i, n := range CounterNames() {
		if _, dup := pos[n]; dup || n == "" {
			t.Errorf("counter name %q empty or twice", n)
		}
		pos[n] = i
	}
	// The scalar counters of zcfuse_server_stats_t (version 2), plus some
	// the struct does not have.
	want := []string{"queues", "queue_depth", "bytes_read", "bytes_written", "errors", "fast_reads",
		"fs.inodes", "fs.open_files", "passthrough", "read_only", "sessions", "arenas",
		"registered_bytes", "attached_files", "fixed_slots_used", "zc_ops", "zc_errors",
		"zc_read_bytes", "zc_write_bytes", "zero_copy_bytes", "copied_bytes", "queue_high_water", "workers"}
	for _, n := range want {
		if _, ok := pos[n]; !ok {
			t.Errorf("no counter %q (have %v)", n, CounterNames())
		}
	}
	for _, n := range []string{"transport", "fallback_reason", "requests", "backing", "mountpoint", "control_socket"} {
		if _, ok := pos[n]; ok {
			t.Errorf("%q is not a number but is a counter", n)
		}
	}
	if pos["bytes_read"] > pos["bytes_written"] || pos["zc_ops"] > pos["workers"] {
		t.Errorf("counters are not in struct order: %v", CounterNames())
	}
}

// A struct with what encoding/json treats specially: embedded values and
// pointers, a named nested struct and a nil one, ambiguous names, untagged
// and unexported fields, negative ints, pointers to numbers, types that
// marshal themselves.
type counterQuirks struct {
	quirkEmbedded
	*QuirkPtr
	Nested   quirkNested  `json:"nested"`
	NilPtr   *quirkNested `json:"nil_ptr"`
	Untagged uint32
	Neg      int64     `json:"neg"`
	Shadowed uint64    `json:"shadowed"` // wins over quirkEmbedded's (shallower)
	IntPtr   *int      `json:"int_ptr"`
	When     time.Time `json:"when"`
	Dur      time.Duration
	Skipped  uint64            `json:"-"`
	Dash     uint64            `json:"-,"` // named "-"
	Arr      [2]uint64         `json:"arr"`
	Map      map[string]uint64 `json:"map"`
	Omit     uint16            `json:"omit,omitempty"`
	hidden   uint64
}

type quirkEmbedded struct {
	Inner    uint8  `json:"inner"`
	Shadowed uint64 `json:"shadowed"`
	Amb      int    `json:"amb"`
	Y        uint32 // loses to QuirkPtr's tagged "Y" at the same depth
}

type QuirkPtr struct {
	Amb   int  `json:"amb"` // with quirkEmbedded's at the same depth: neither is encoded
	Flag  bool `json:"flag"`
	Untag int8
	Other uint32 `json:"Y"`
}

type quirkNested struct {
	A uint64 `json:"a"`
	quirkEmbedded
}

func TestCountersFollowEncodingJSON(t *testing.T) {
	var q counterQuirks
	fill(reflect.ValueOf(&q).Elem(), new(uint64))
	q.Neg = -5
	q.hidden = 1
	b, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	fields := countersOf(reflect.TypeFor[counterQuirks]())
	got := readCounters(reflect.ValueOf(q), fields)
	checkAgainstJSON(t, b, got)
	for _, c := range got {
		if c.Name == "neg" && c.Value != 1<<64-5 {
			t.Errorf("neg = %d, want the two's complement of -5", c.Value)
		}
	}
	// Nil pointers on the way read as 0 (their JSON is null, or absent).
	q.QuirkPtr, q.NilPtr, q.IntPtr = nil, nil, nil
	for _, c := range readCounters(reflect.ValueOf(q), fields) {
		switch c.Name {
		case "flag", "Y", "Untag", "nil_ptr.a", "nil_ptr.inner", "int_ptr":
			if c.Value != 0 {
				t.Errorf("%s through a nil pointer = %d", c.Name, c.Value)
			}
		}
	}
}

// A snapshot is cheap: the walk of the type happens once per process, and
// a call allocates little more than its slice (a walk would allocate
// hundreds of times; the margin is for goroutines other tests left).
func TestCountersWalkOnce(t *testing.T) {
	if a, b := statsCounters(), statsCounters(); &a[0] != &b[0] {
		t.Error("the Stats type is walked on every call")
	}
	st := Stats{}
	st.Counters()
	if n := testing.AllocsPerRun(100, func() { st.Counters() }); n > 10 {
		t.Errorf("Counters allocates %v times per call", n)
	}
}

// fill sets every settable number in v to a distinct non-zero value
// (from *next), bools to true, strings to "s", and allocates pointers;
// maps and slices stay nil.
func fill(v reflect.Value, next *uint64) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fill(f, next)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), next)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), next)
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.String:
		v.SetString("s")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*next++
		v.SetInt(int64(*next))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		*next++
		v.SetUint(*next)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	}
}

// checkAgainstJSON fails unless counters are exactly the numeric and bool
// leaves of the JSON object b (outside arrays and outside maps, which
// fill leaves nil), under their dotted paths, with the same values.
func checkAgainstJSON(t *testing.T, b []byte, counters []Counter) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			switch v := v.(type) {
			case map[string]any:
				walk(prefix+k+".", v)
			case bool:
				want[prefix+k] = 0
				if v {
					want[prefix+k] = 1
				}
			case json.Number:
				if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
					want[prefix+k] = u
				} else if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
					want[prefix+k] = uint64(i)
				} else {
					t.Errorf("%s%s = %s in the JSON: not an integer, so not a counter (use an integer type)", prefix, k, v)
				}
			}
		}
	}
	walk("", doc)
	seen := map[string]bool{}
	for _, c := range counters {
		if seen[c.Name] {
			t.Errorf("counter %q twice", c.Name)
		}
		seen[c.Name] = true
		w, ok := want[c.Name]
		switch {
		case !ok:
			t.Errorf("counter %q = %d is not a number of the JSON %s", c.Name, c.Value, b)
		case w != c.Value:
			t.Errorf("counter %q = %d, the JSON says %d", c.Name, c.Value, w)
		}
	}
	for name, v := range want {
		if !seen[name] {
			t.Errorf("%s = %d in the JSON is not a counter", name, v)
		}
	}
}
