package mountproc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// StatusField is the number in field (e.g. "Threads", "VmRSS" in kB) of
// /proc/PID/status; pid 0 is this process.
func StatusField(pid int, field string) (int64, error) {
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s line", p, field)
}
