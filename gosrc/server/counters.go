package server

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// A Counter is one number of a Stats snapshot, under its JSON name.
type Counter struct {
	Name  string
	Value uint64
}

// Counters returns st's numbers by name, in the order of CounterNames:
// every integer field (a negative one as its two's complement) and every
// bool (0 or 1) of Stats, named as encoding/json names them, with the
// fields of embedded structs in place and those of a named struct field
// after its name and a dot ("fs.inodes"). Strings, floats, maps, slices,
// arrays, types that marshal themselves (MarshalJSON, MarshalText) and
// fields tagged `json:"-"` are not counters; a nil pointer on the way to
// a number reads as 0; a name encoding/json would drop as ambiguous is
// dropped here too.
//
// The names and their order come from the Stats type alone (walked once
// per process), so they are the same for every snapshot of every server;
// a field added to Stats, or to a struct it holds, is a counter of the C
// API (zcfuse_server_counters), the bindings and `zcfuse stats --json`
// without another line of code.
func (st Stats) Counters() []Counter {
	return readCounters(reflect.ValueOf(st), statsCounters())
}

// CounterNames returns the names Counters gives, in its order. The slice
// is the caller's.
func CounterNames() []string {
	fields := statsCounters()
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return out
}

var statsCounters = sync.OnceValue(func() []counterField { return countersOf(reflect.TypeFor[Stats]()) })

// counterField is where one counter lives in Stats.
type counterField struct {
	name string
	// index is the reflect field path from Stats; a nil pointer on the
	// way (or the field, a *int, itself nil) reads as 0.
	index []int
	kind  reflect.Kind
}

func (f *counterField) value(v reflect.Value) uint64 {
	for _, i := range f.index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return 0
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return 0
		}
		v = v.Elem()
	}
	switch f.kind {
	case reflect.Bool:
		if v.Bool() {
			return 1
		}
		return 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return uint64(v.Int())
	default:
		return v.Uint()
	}
}

// readCounters reads fields (countersOf v's type) from v.
func readCounters(v reflect.Value, fields []counterField) []Counter {
	out := make([]Counter, len(fields))
	for i := range fields {
		out[i] = Counter{Name: fields[i].name, Value: fields[i].value(v)}
	}
	return out
}

// countersOf returns where the counters of struct type t live, in struct
// order.
func countersOf(t reflect.Type) []counterField {
	var found []candidate
	walkCounters(t, "", nil, 0, &found)
	return dominant(found)
}

// candidate is a counter before the name conflicts are settled.
type candidate struct {
	counterField
	depth  int  // embedding depth within its struct, as encoding/json counts it
	tagged bool // its name came from a json tag
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// custom reports whether t encodes itself (MarshalJSON, MarshalText): its
// JSON is not its fields, so it has no counters.
func custom(t reflect.Type) bool {
	return t.Implements(marshalerType) || t.Implements(textMarshalerType) ||
		reflect.PointerTo(t).Implements(marshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)
}

// walkCounters appends the counters of struct type t, named under prefix,
// following encoding/json's rules for which fields it encodes and under
// which name.
func walkCounters(t reflect.Type, prefix string, index []int, depth int, out *[]candidate) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		path := append(append([]int(nil), index...), i)
		if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct && !custom(ft) {
			// Embedded without a name: its fields are this struct's.
			walkCounters(ft, prefix, path, depth+1, out)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		tagged := name != ""
		if !tagged {
			name = sf.Name
		}
		if custom(ft) {
			continue
		}
		switch ft.Kind() {
		case reflect.Struct:
			walkCounters(ft, prefix+name+".", path, 0, out)
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			*out = append(*out, candidate{
				counterField: counterField{name: prefix + name, index: path, kind: ft.Kind()},
				depth:        depth, tagged: tagged,
			})
		}
	}
}

// dominant settles names that occur more than once in one struct as
// encoding/json does: the shallowest embedding wins, then the one tagged
// field among the shallowest; any other tie hides them all. The survivors
// keep struct order.
func dominant(found []candidate) []counterField {
	byName := map[string][]int{}
	for i, c := range found {
		byName[c.name] = append(byName[c.name], i)
	}
	winner := map[string]int{}
	for name, rivals := range byName {
		shallow := found[rivals[0]].depth
		for _, j := range rivals {
			shallow = min(shallow, found[j].depth)
		}
		best, n, tagged := -1, 0, 0
		for _, j := range rivals {
			if found[j].depth != shallow {
				continue
			}
			n++
			if found[j].tagged {
				tagged++
				best = j
			} else if tagged == 0 {
				best = j
			}
		}
		if n == 1 || tagged == 1 {
			winner[name] = best
		}
	}
	var out []counterField
	for i, c := range found {
		if w, ok := winner[c.name]; ok && w == i {
			out = append(out, c.counterField)
		}
	}
	return out
}
