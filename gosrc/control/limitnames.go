package control

import (
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// Limits by name: every field of Limits, in snake case ("SessionsPerUser"
// is "sessions_per_user"; a duration is set in milliseconds and named
// with "_ms"). The CLI's --limit, the C ABI's zcfuse_server_set_limit and
// the bindings all go through these, so a limit added to Limits reaches
// them with no other edit.

// limitField is one settable limit.
type limitField struct {
	name  string
	index int
	ms    bool // a time.Duration, set in milliseconds
}

var limitFields = func() []limitField {
	t := reflect.TypeOf(Limits{})
	out := make([]limitField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		lf := limitField{name: snake(f.Name), index: i}
		if f.Type == reflect.TypeOf(time.Duration(0)) {
			lf.ms, lf.name = true, lf.name+"_ms"
		}
		out = append(out, lf)
	}
	return out
}()

// snake turns a Go field name into snake case.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// LimitNames are the names Set takes, in the order of Limits' fields.
func LimitNames() []string {
	out := make([]string, len(limitFields))
	for i, f := range limitFields {
		out[i] = f.name
	}
	return out
}

// Set sets the limit called name to v (milliseconds for a duration); 0
// means the default. ENOENT for an unknown name, ERANGE for a value the
// field cannot hold.
func (l *Limits) Set(name string, v uint64) error {
	for _, f := range limitFields {
		if f.name != name {
			continue
		}
		fv := reflect.ValueOf(l).Elem().Field(f.index)
		if f.ms {
			if v > uint64(1<<63-1)/uint64(time.Millisecond) {
				return fmt.Errorf("limit %s: %d ms is too long: %w", name, v, syscall.ERANGE)
			}
			fv.SetInt(int64(time.Duration(v) * time.Millisecond))
			return nil
		}
		switch fv.Kind() {
		case reflect.Int:
			if fv.OverflowInt(int64(v)) || v > 1<<62 {
				return fmt.Errorf("limit %s: %d is out of range: %w", name, v, syscall.ERANGE)
			}
			fv.SetInt(int64(v))
		case reflect.Uint32, reflect.Uint64:
			if fv.OverflowUint(v) {
				return fmt.Errorf("limit %s: %d is out of range: %w", name, v, syscall.ERANGE)
			}
			fv.SetUint(v)
		default:
			panic("control: limit " + name + " of kind " + fv.Kind().String())
		}
		return nil
	}
	return fmt.Errorf("no limit named %q (limits: %s): %w", name, strings.Join(LimitNames(), ", "), syscall.ENOENT)
}

// Get returns the limit called name (milliseconds for a duration).
func (l Limits) Get(name string) (uint64, bool) {
	for _, f := range limitFields {
		if f.name != name {
			continue
		}
		fv := reflect.ValueOf(l).Field(f.index)
		switch {
		case f.ms:
			return uint64(time.Duration(fv.Int()) / time.Millisecond), true
		case fv.Kind() == reflect.Int:
			return uint64(fv.Int()), true
		default:
			return fv.Uint(), true
		}
	}
	return 0, false
}
