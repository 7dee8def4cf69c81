package bench

import (
	"bufio"
	"crypto/sha256"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes where a run happened.
type Machine struct {
	NProc      int    `json:"nproc"` // CPUs this process may use
	OnlineCPUs string `json:"online_cpus"`
	Kernel     string `json:"kernel"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
	Go         string `json:"go"` // the harness's Go runtime
	Fio        string `json:"fio"`
	// GitCommit is HEAD of the working directory at the start of the run
	// ("-dirty": tracked files changed); Binary identifies the zcfuse
	// binary the servers ran, which may have been built before.
	GitCommit   string `json:"git_commit,omitempty"`
	Binary      string `json:"binary"`
	EnableURing string `json:"enable_uring"`
	ShmFS       string `json:"shm_fs"` // file system type of the backing directory
	// Baseline is the other zcfuse binary the base-* targets ran
	// (--baseline); nil when none ran.
	Baseline *BinaryInfo `json:"baseline,omitempty"`
}

// BinaryInfo identifies a binary file: what --baseline compared with.
type BinaryInfo struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime string `json:"mtime"`
	SHA256  string `json:"sha256"`
	// Revision is the VCS revision Go stamped into the binary ("-dirty":
	// built with modified files); "" when it has none. GoVersion is the
	// Go that built it.
	Revision  string `json:"vcs_revision,omitempty"`
	GoVersion string `json:"go_version,omitempty"`
	// Error says why the file could not be read (the rest is then empty).
	Error string `json:"error,omitempty"`
}

// String is one line for people.
func (b *BinaryInfo) String() string {
	if b.Error != "" {
		return b.Path + ": " + b.Error
	}
	s := fmt.Sprintf("%s, %d bytes, mtime %s, sha256 %s", b.Path, b.Size, b.ModTime, b.SHA256)
	if b.Revision != "" {
		s += ", built from " + b.Revision
	}
	return s
}

// binaryInfo describes the file at path.
func binaryInfo(path string) *BinaryInfo {
	b := &BinaryInfo{Path: path}
	f, err := os.Open(path)
	if err != nil {
		b.Error = err.Error()
		return b
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Error = err.Error()
		return b
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Error = err.Error()
		return b
	}
	b.Size, b.ModTime, b.SHA256 = st.Size(), st.ModTime().UTC().Format(time.RFC3339), fmt.Sprintf("%x", h.Sum(nil))
	if bi, err := buildinfo.ReadFile(path); err == nil {
		b.GoVersion = bi.GoVersion
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" && modified == "true" {
			rev += "-dirty"
		}
		b.Revision = rev
	}
	return b
}

// URingParam switches FUSE-over-io_uring on (Y) or off.
const URingParam = "/sys/module/fuse/parameters/enable_uring"

func machineInfo(fio, exe string) Machine {
	m := Machine{
		NProc:       runtime.NumCPU(),
		OnlineCPUs:  readTrim("/sys/devices/system/cpu/online"),
		Go:          runtime.Version(),
		EnableURing: readTrim(URingParam),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if out, err := exec.Command(fio, "--version").Output(); err == nil {
		m.Fio = strings.TrimSpace(string(out))
	}
	m.GitCommit = gitCommit()
	m.Binary = binaryID(exe)
	return m
}

// binaryID is path, modification time and SHA-256 prefix of a file.
func binaryID(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return path
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return path
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return path
	}
	return fmt.Sprintf("%s built %s sha256:%x", path, st.ModTime().UTC().Format(time.RFC3339), h.Sum(nil)[:8])
}

// gitCommit is HEAD of the working directory's repository ("-dirty" when
// tracked files changed), else the revision stamped into the binary.
func gitCommit() string {
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		rev := strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			rev += "-dirty"
		}
		return rev
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procField is the value of the first "key : value" line of path.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() string { return readTrim("/proc/loadavg") }

// fsType names the file system holding path (tmpfs is what the harness
// wants).
func fsType(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.FUSE_SUPER_MAGIC:
		return "fuse"
	}
	return "0x" + strconv.FormatUint(uint64(st.Type), 16)
}

// otherFio lists fio processes this harness did not start (another
// benchmark on the machine makes the numbers meaningless).
func otherFio() []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if readTrim("/proc/"+e.Name()+"/comm") == "fio" {
			out = append(out, e.Name())
		}
	}
	return out
}
