// Command zcfuse-bench is zcfuse's benchmark harness (package bench): fio
// through the backing directory itself, zcfuse's mounts and go-fuse's
// loopback, and zcfuse's own client along the zero-copy paths, side by
// side in one run. It is a tool for zcfuse's developers, built apart from
// the zcfuse CLI (make bench builds both into bin/ and runs it).
//
//	zcfuse-bench [--smoke] [--reps N] [--runtime DUR] [--targets LIST] [--rows LIST]
//	             [--json FILE] [--plot FILE.png] [--zcfuse PATH] ...   (zcfuse-bench --help)
//	zcfuse-bench --from FILE.json [--plot FILE.png]
//
// The zcfuse targets mount with the zcfuse binary next to zcfuse-bench
// (or --zcfuse PATH). Two subcommands are the helpers the harness runs as
// child processes: serve-gofuse (the go-fuse server) and zc-client (one
// zero-copy client run); --help lists them.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/zcfuse/zcfuse/gosrc/bench"
)

func main() {
	err := bench.Main(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, bench.ErrUsage):
		msg := strings.TrimPrefix(err.Error(), bench.ErrUsage.Error()+": ")
		fmt.Fprintf(os.Stderr, "zcfuse-bench: %s\n%s(zcfuse-bench --help lists every flag)\n", msg, bench.Usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "zcfuse-bench: %v\n", err)
		os.Exit(1)
	}
}
