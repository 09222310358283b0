package ssebench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// Steal is the time the hypervisor ran something else while this
// machine's virtual CPUs wanted to run. It comes in bursts of milliseconds,
// and every event that is in flight during one waits for it: on the
// 2-core virtual machine of docs/performance.md a few percent of steal
// during a run was enough to move the latency p99 from under 5 ms to
// 10-20 ms, for both servers alike. So the tool records it beside the
// latency it reports.

// cpuTicks reads the steal and total ticks of all CPUs from /proc/stat
// (Linux; ok is false elsewhere or when it cannot be read).
func cpuTicks() (steal, total uint64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseCPUTicks(data)
}

// parseCPUTicks reads the "cpu" line of a /proc/stat text: user nice
// system idle iowait irq softirq steal [guest guest_nice]. Guest time is
// already counted in user, so the total is the first eight.
func parseCPUTicks(data []byte) (steal, total uint64, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 9 || string(fields[0]) != "cpu" {
			continue
		}
		for i, f := range fields[1:9] {
			v, err := strconv.ParseUint(string(f), 10, 64)
			if err != nil {
				return 0, 0, false
			}
			total += v
			if i == 7 {
				steal = v
			}
		}
		return steal, total, true
	}
	return 0, 0, false
}

// stealMeter measures the share of CPU time stolen between startSteal
// and percent.
type stealMeter struct {
	steal, total uint64
	ok           bool
}

func startSteal() stealMeter {
	s, t, ok := cpuTicks()
	return stealMeter{steal: s, total: t, ok: ok}
}

// percent returns the stolen share of all CPUs' time since start, in
// percent, or -1 when it cannot be measured.
func (m stealMeter) percent() float64 { return startSteal().since(m) }

// since returns the stolen share of all CPUs' time between the readings
// from and m, in percent, or -1 when either could not be read.
func (m stealMeter) since(from stealMeter) float64 {
	if !from.ok || !m.ok || m.total <= from.total {
		return -1
	}
	return 100 * float64(m.steal-from.steal) / float64(m.total-from.total)
}
