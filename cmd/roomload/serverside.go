package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// histograms holds, per histogram of a node's /metrics, the cumulative
// count at each bucket bound.
type histograms map[string]map[float64]float64

// nodeMetrics is what roomload reads of a node's /metrics.
type nodeMetrics struct {
	buckets histograms
	// gcCycles counts the node's completed garbage-collection cycles
	// (go_gc_duration_seconds_count): under a burst, most of the slowest
	// logins fall in one (docs/benchmarks.md, "Login under a burst").
	gcCycles float64
	// allocated is the node's heap allocations so far, in bytes
	// (go_memstats_alloc_bytes_total): what sets the pace of its cycles.
	allocated float64
}

// scrapeNode reads the _bucket series, the GC cycle count and the bytes
// allocated of a node's /metrics.
func scrapeNode(ctx context.Context, addr string) (nodeMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nodeMetrics{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nodeMetrics{}, err
	}
	defer resp.Body.Close()
	out := nodeMetrics{buckets: histograms{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "go_gc_duration_seconds_count "); ok {
			out.gcCycles, _ = strconv.ParseFloat(v, 64)
			continue
		}
		if v, ok := strings.CutPrefix(line, "go_memstats_alloc_bytes_total "); ok {
			out.allocated, _ = strconv.ParseFloat(v, 64)
			continue
		}
		// name_bucket{labels,le="bound"} count, keyed as name{labels,
		i, j := strings.Index(line, "_bucket{"), strings.Index(line, `le="`)
		if strings.HasPrefix(line, "#") || i < 0 || j < i {
			continue
		}
		name := line[:i] + "{" + line[i+len("_bucket{"):j]
		le, val, ok := strings.Cut(line[j+len(`le="`):], "\"} ")
		if !ok {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		count, err2 := strconv.ParseFloat(val, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if out.buckets[name] == nil {
			out.buckets[name] = map[float64]float64{}
		}
		out.buckets[name][bound] = count
	}
	return out, sc.Err()
}

// quantile estimates quantile q of what histogram name observed between
// two scrapes, interpolating within a bucket as Prometheus'
// histogram_quantile does (the buckets double, so it is within a factor 2).
func (after histograms) quantile(before histograms, name string, q float64) (time.Duration, bool) {
	a, b := after[name], before[name]
	bounds := make([]float64, 0, len(a))
	for le := range a {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return 0, false
	}
	total := a[math.Inf(1)] - b[math.Inf(1)]
	if total <= 0 {
		return 0, false
	}
	rank, lower, prev := q*total, 0.0, 0.0
	for _, le := range bounds {
		n := a[le] - b[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return time.Duration(lower * float64(time.Second)), true
			}
			frac := 1.0
			if n > prev {
				frac = (rank - prev) / (n - prev)
			}
			return time.Duration((lower + (le-lower)*frac) * float64(time.Second)), true
		}
		lower, prev = le, n
	}
	return 0, false
}

// serverSide says, from two scrapes of the node's /metrics around a round
// of logins (each followed by its logout), where the server spent the
// round's commands' time, and what it allocated per login.
func serverSide(before, after nodeMetrics, logins int) string {
	var parts []string
	for _, h := range []struct{ name, label string }{
		{`roomlog_gateway_request_duration_seconds{op="login",`, "login request"},
		{"roomlog_command_duration_seconds{", "command"},
		{"roomlog_append_duration_seconds{", "append"},
		{"roomlog_fold_duration_seconds{", "fold"},
	} {
		p50, ok1 := after.buckets.quantile(before.buckets, h.name, 0.5)
		p99, ok2 := after.buckets.quantile(before.buckets, h.name, 0.99)
		if ok1 && ok2 {
			parts = append(parts, fmt.Sprintf("%s p50=%v p99=%v", h.label, p50.Round(time.Microsecond), p99.Round(time.Microsecond)))
		}
	}
	parts = append(parts, fmt.Sprintf("GC cycles %.0f", after.gcCycles-before.gcCycles))
	if logins > 0 {
		parts = append(parts, fmt.Sprintf("allocated %.1f kB per login", (after.allocated-before.allocated)/float64(logins)/1e3))
	}
	return "server: " + strings.Join(parts, " ")
}
