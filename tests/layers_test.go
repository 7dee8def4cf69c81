package tests

// The house's layering (issue 13): every package of the module has a
// layer, imports only packages of lower layers, and says in its doc what
// it owns; the CLI users install links neither the benchmark harness nor
// its plotting.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/zcfuse/zcfuse/"

// layers: each package's layer, lowest first. A package may import only
// packages of a lower layer; a new package fails the test until it has
// one here.
var layers = map[string]int{
	// Formats and primitives: kernel structs, the op queue's layout, the
	// back channel's messages, shared memory.
	"gosrc/uapi": 0, "gosrc/opq": 0, "gosrc/wire": 0, "gosrc/arena": 0,
	// System building blocks: io_uring, credentials.
	"gosrc/ring": 1, "gosrc/passthrough": 1,
	// The transport, the file-system layer, the client library, the
	// data plane: none knows another.
	"gosrc/fusering": 2, "gosrc/fs": 2, "gosrc/client": 2, "gosrc/dataplane": 2,
	// The control plane drives the data plane.
	"gosrc/control": 3,
	// The server composes all of them.
	"gosrc/server": 4,
	// Tools over the server: the process launcher tests and the bench
	// share, the bench.
	"gosrc/mountproc": 5, "gosrc/bench": 6,
	// Programs and the C ABI.
	"gosrc/cmd/zcfuse": 7, "gosrc/cmd/zcfuse-bench": 7, "capi": 7,
}

type goPackage struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command(goTool(), "list", "-json", "./gosrc/...", "./capi")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestLayers(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < len(layers) {
		t.Fatalf("go list found %d packages, the table has %d", len(pkgs), len(layers))
	}
	for _, p := range pkgs {
		name := strings.TrimPrefix(p.ImportPath, module)
		layer, ok := layers[name]
		if !ok {
			t.Errorf("%s has no layer in tests/layers_test.go: give it one", name)
			continue
		}
		if p.Name != "main" && firstSentence(p.Doc) == "" {
			t.Errorf("%s has no package doc saying what it owns", name)
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if l, ok := layers[dep]; ok && l >= layer {
				t.Errorf("%s (layer %d) imports %s (layer %d): only lower layers", name, layer, dep, l)
			}
		}
	}
}

// The CLI users install links neither the bench harness nor plotting and
// font code.
func TestCLILinksNoBench(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"gosrc/cmd/zcfuse" {
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"gosrc/bench") || strings.Contains(d, "plot") || strings.Contains(d, "font") {
				t.Errorf("zcfuse links %s", d)
			}
		}
		return
	}
	t.Fatal("gosrc/cmd/zcfuse not found")
}

func firstSentence(doc string) string {
	sc := bufio.NewScanner(strings.NewReader(doc))
	if sc.Scan() {
		return sc.Text()
	}
	return ""
}
