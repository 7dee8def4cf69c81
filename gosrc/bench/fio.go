package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Measurement is what one fio run measured, in the direction of its row.
type Measurement struct {
	IOPS      float64 `json:"iops"`
	GBps      float64 `json:"gb_per_s"` // 1e9 bytes per second
	IOs       uint64  `json:"ios"`
	RuntimeMs int64   `json:"runtime_ms"`
	MeanUs    float64 `json:"mean_us"` // completion latency (clat)
	P50Us     float64 `json:"p50_us"`
	P99Us     float64 `json:"p99_us"`
	P999Us    float64 `json:"p999_us"`
	UsrCPU    float64 `json:"fio_usr_cpu_pct"`
	SysCPU    float64 `json:"fio_sys_cpu_pct"`
	Ctx       uint64  `json:"fio_ctx_switches"`
}

// fioArgs are the fio arguments of one run of row on file, writing JSON
// to out.
func fioArgs(row Row, file, out string, runtime, ramp time.Duration) []string {
	a := []string{
		"--name=" + row.ID,
		"--filename=" + file,
		"--ioengine=psync",
		"--iodepth=1",
		"--numjobs=1",
		"--rw=" + row.RW,
		"--bs=" + row.BS,
		"--direct=1",
		"--time_based",
		"--runtime=" + fioTime(runtime),
		"--percentile_list=50:99:99.9",
		"--output-format=json",
		"--output=" + out,
	}
	if ramp > 0 {
		a = append(a, "--ramp_time="+fioTime(ramp))
	}
	return a
}

// metaFilePrefix names the files of a meta row: fio's filename_format
// is metaFilePrefix+"$jobnum.$filenum", so job 0's files are f.0.0,
// f.0.1, ...; the unlink row's files are made under these names first.
const metaFilePrefix = "f."

// metaFioArgs are the fio arguments of one run of the meta row row
// (create or unlink) in dir, writing JSON to out: fio's filecreate or
// filedelete engine at QD1, one job, each "I/O" one open(O_CREAT) of a
// new file (left empty: fallocate=none, and filecreate writes nothing)
// or one unlink(2) of an existing one, over files files or until
// runtime, whichever comes first. No ramp: it would use up files.
func metaFioArgs(row Row, dir, out string, files int, runtime time.Duration) []string {
	return []string{
		"--name=" + row.ID,
		"--directory=" + dir,
		"--filename_format=" + metaFilePrefix + "$jobnum.$filenum",
		"--ioengine=" + row.Engine,
		"--iodepth=1",
		"--numjobs=1",
		"--nrfiles=" + strconv.Itoa(files),
		"--openfiles=1",
		"--filesize=4k",
		"--bs=4k",
		"--fallocate=none",
		"--runtime=" + fioTime(runtime),
		"--percentile_list=50:99:99.9",
		"--output-format=json",
		"--output=" + out,
	}
}

// fioTime writes d the way fio's time options read it.
func fioTime(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

type fioJSON struct {
	Version string `json:"fio version"`
	Jobs    []struct {
		Error  int     `json:"error"`
		Read   fioDir  `json:"read"`
		Write  fioDir  `json:"write"`
		UsrCPU float64 `json:"usr_cpu"`
		SysCPU float64 `json:"sys_cpu"`
		Ctx    uint64  `json:"ctx"`
	} `json:"jobs"`
}

type fioDir struct {
	IOPS     float64 `json:"iops"`
	BWBytes  float64 `json:"bw_bytes"`
	TotalIOs uint64  `json:"total_ios"`
	Runtime  int64   `json:"runtime"`
	Clat     struct {
		Mean       float64            `json:"mean"`
		Percentile map[string]float64 `json:"percentile"`
	} `json:"clat_ns"`
}

// parseFio reads fio's JSON output for one job and returns the side
// (read or write) of op; the meta ops (CREATE, UNLINK) are counted on
// the read side. Text fio writes before the JSON is skipped.
func parseFio(data []byte, op string) (Measurement, error) {
	var m Measurement
	if i := bytes.IndexByte(data, '{'); i > 0 {
		data = data[i:]
	}
	var f fioJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return m, fmt.Errorf("fio output: %w", err)
	}
	if len(f.Jobs) != 1 {
		return m, fmt.Errorf("fio output: %d jobs, want 1", len(f.Jobs))
	}
	j := f.Jobs[0]
	if j.Error != 0 {
		return m, fmt.Errorf("fio job error %d", j.Error)
	}
	d := j.Read
	if op == "WRITE" {
		d = j.Write
	}
	if d.TotalIOs == 0 {
		return m, fmt.Errorf("fio did no %s I/O", op)
	}
	m = Measurement{
		IOPS: d.IOPS, GBps: d.BWBytes / 1e9, IOs: d.TotalIOs, RuntimeMs: d.Runtime,
		MeanUs: d.Clat.Mean / 1e3,
		P50Us:  d.Clat.Percentile["50.000000"] / 1e3,
		P99Us:  d.Clat.Percentile["99.000000"] / 1e3,
		P999Us: d.Clat.Percentile["99.900000"] / 1e3,
		UsrCPU: j.UsrCPU, SysCPU: j.SysCPU, Ctx: j.Ctx,
	}
	return m, nil
}
