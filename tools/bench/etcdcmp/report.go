package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// stat is one figure over the rounds.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Sum    float64 `json:"sum"`
	N      int     `json:"n"`
}

func statOf(vs []float64) stat {
	if len(vs) == 0 {
		return stat{}
	}
	s := slices.Sorted(slices.Values(vs))
	st := stat{Min: s[0], Max: s[len(s)-1], N: len(s)}
	if n := len(s); n%2 == 1 {
		st.Median = s[n/2]
	} else {
		st.Median = (s[n/2-1] + s[n/2]) / 2
	}
	for _, v := range s {
		st.Sum += v
	}
	return st
}

// row is one figure of one load on both systems. Ratio is Aspen's figure
// over etcd's within each round (the two ran back to back), so that a
// round's background load mostly cancels out.
type row struct {
	Load   string `json:"load"`
	Title  string `json:"title"`
	Figure string `json:"figure"` // ops/s, p50 ms, p99 ms or errors
	Aspen  stat   `json:"aspen"`
	Etcd   stat   `json:"etcd"`
	Ratio  stat   `json:"ratio"` // aspen / etcd; N is 0 where etcd's figure was 0
}

// figures are the rows each load gets, with how to read them from a result.
var figures = []struct {
	name string
	of   func(result) float64
}{
	{"ops/s", func(r result) float64 { return r.OpsPerSecond }},
	{"p50 ms", func(r result) float64 { return r.P50Ms }},
	{"p99 ms", func(r result) float64 { return r.P99Ms }},
	{"errors", func(r result) float64 { return float64(r.Errors) }},
	{"node CPU µs/op", func(r result) float64 { return r.NodeCPUUsPerOp }},
	{"  in the kernel", func(r result) float64 { return r.NodeKernelCPUUsPerOp }},
	{"client CPU µs/op", func(r result) float64 { return r.ClientCPUUsPerOp }},
}

func summaryRows(loads []load, results []result) []row {
	var rows []row
	for _, l := range loads {
		byRound := map[int]map[string]result{}
		for _, r := range results {
			if r.Load == l.Name {
				if byRound[r.Round] == nil {
					byRound[r.Round] = map[string]result{}
				}
				byRound[r.Round][r.System] = r
			}
		}
		for _, f := range figures {
			var a, e, ratio []float64
			for _, rs := range byRound {
				ra, okA := rs["aspen"]
				re, okE := rs["etcd"]
				if okA {
					a = append(a, f.of(ra))
				}
				if okE {
					e = append(e, f.of(re))
				}
				if okA && okE && f.of(re) != 0 {
					ratio = append(ratio, f.of(ra)/f.of(re))
				}
			}
			rows = append(rows, row{Load: l.Name, Title: l.title(), Figure: f.name,
				Aspen: statOf(a), Etcd: statOf(e), Ratio: statOf(ratio)})
		}
	}
	return rows
}

func printTable(w io.Writer, rep *report) error {
	fmt.Fprintf(w, "%s; %d CPUs; load average %s before, %s after\n", rep.Date, rep.CPUs, rep.LoadBefore, rep.LoadAfter)
	cfg := rep.Config
	fmt.Fprintf(w, "aspen %s vs etcd %s, 3 nodes each on loopback, %d-byte values\n", rep.Aspen, rep.Etcd, cfg.ValueBytes)
	if len(rep.Rows) > 0 {
		fmt.Fprintf(w, "%d rounds of %s over %d keys, the first system alternating. Cells: median over rounds (min-max);\n", cfg.Rounds, cfg.Duration, cfg.Keys)
		fmt.Fprintln(w, "aspen/etcd: the ratio within each round, median (min-max).")
	}
	fmt.Fprintln(w, "Ratios above 1 mean more ops/s, ms, CPU, MB or keys for aspen. Memory: MB per node; its ratio is of the sums.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "load\tfigure\taspen\tetcd\taspen/etcd")
	last := ""
	for _, r := range rep.Rows {
		title := r.Title
		if title == last {
			title = ""
		}
		last = r.Title
		if r.Figure == "errors" {
			fmt.Fprintf(tw, "%s\terrors (sum)\t%.0f\t%.0f\t\n", title, r.Aspen.Sum, r.Etcd.Sum)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", title, r.Figure, statCell(r.Aspen, r.Figure), statCell(r.Etcd, r.Figure), ratioCell(r.Ratio))
	}
	if len(rep.Systems) == 2 {
		a, e := rep.Systems[0], rep.Systems[1]
		fmt.Fprintf(tw, "start to first write\ts\t%.2f\t%.2f\t%s\n", a.StartSeconds, e.StartSeconds, ratio(a.StartSeconds, e.StartSeconds))
		memoryRows(tw, "memory idle after start", a.IdleMemory, e.IdleMemory)
		memoryRows(tw, "memory after the rounds", a.AfterMemory, e.AfterMemory)
	}
	if rep.Large != nil && len(rep.Large.Systems) == 2 {
		largeRows(tw, rep.Large)
	}
	return tw.Flush()
}

func largeRows(tw io.Writer, lr *largeReport) {
	a, e := lr.Systems[0], lr.Systems[1]
	l := lr.Load
	title := fmt.Sprintf("%s keys, put %d clients, %s", count(int64(l.Keys)), l.Clients, l.Duration)
	fmt.Fprintf(tw, "%s\tops/s\t%s\t%s\t%s\n", title, number(a.Put.OpsPerSecond, "ops/s"), number(e.Put.OpsPerSecond, "ops/s"), ratio(a.Put.OpsPerSecond, e.Put.OpsPerSecond))
	fmt.Fprintf(tw, "\tp50 ms\t%s\t%s\t%s\n", number(a.Put.P50Ms, "ms"), number(e.Put.P50Ms, "ms"), ratio(a.Put.P50Ms, e.Put.P50Ms))
	fmt.Fprintf(tw, "\tp99 ms\t%s\t%s\t%s\n", number(a.Put.P99Ms, "ms"), number(e.Put.P99Ms, "ms"), ratio(a.Put.P99Ms, e.Put.P99Ms))
	fmt.Fprintf(tw, "\terrors\t%d\t%d\t\n", a.Put.Errors, e.Put.Errors)
	fmt.Fprintf(tw, "\tkeys stored\t%s\t%s\t%s\n", count(a.KeysStored), count(e.KeysStored), ratio(float64(a.KeysStored), float64(e.KeysStored)))
	memoryRows(tw, "\tidle before", a.IdleMemory, e.IdleMemory)
	memoryRows(tw, "\tafter the puts", a.Memory, e.Memory)
	fmt.Fprintf(tw, "\tdisk MB\t%s\t%s\t%s\n", megabytes(a.DiskBytes), megabytes(e.DiskBytes), ratio(float64(sum(a.DiskBytes)), float64(sum(e.DiskBytes))))
	fmt.Fprintf(tw, "kill -9 all 3, restart\tto first write s\t%.2f\t%.2f\t%s\n", a.RestartSeconds, e.RestartSeconds, ratio(a.RestartSeconds, e.RestartSeconds))
	fmt.Fprintf(tw, "\tkeys stored\t%s\t%s\t\n", count(a.KeysAfterRestart), count(e.KeysAfterRestart))
	memoryRows(tw, "\tat the first write", a.RestartMemory, e.RestartMemory)
}

// memoryRows prints VmRSS and RssAnon per node. A title starting with a
// tab continues the block above and names the phase in the figure column.
func memoryRows(tw io.Writer, title string, a, e []memory) {
	rss := func(ms []memory) []int64 { return mapped(ms, func(m memory) int64 { return m.VmRSSKB * 1024 }) }
	anon := func(ms []memory) []int64 { return mapped(ms, func(m memory) int64 { return m.RssAnonKB * 1024 }) }
	lead, phase := title, ""
	if rest, ok := strings.CutPrefix(title, "\t"); ok {
		lead, phase = "", rest+", "
	}
	fmt.Fprintf(tw, "%s\t%sVmRSS MB\t%s\t%s\t%s\n", lead, phase, megabytes(rss(a)), megabytes(rss(e)), ratio(float64(sum(rss(a))), float64(sum(rss(e)))))
	fmt.Fprintf(tw, "\t%sRssAnon MB\t%s\t%s\t%s\n", phase, megabytes(anon(a)), megabytes(anon(e)), ratio(float64(sum(anon(a))), float64(sum(anon(e)))))
}

func mapped[T, U any](ts []T, f func(T) U) []U {
	us := make([]U, len(ts))
	for i, t := range ts {
		us[i] = f(t)
	}
	return us
}

func sum(vs []int64) int64 {
	var s int64
	for _, v := range vs {
		s += v
	}
	return s
}

func megabytes(bs []int64) string {
	parts := mapped(bs, func(b int64) string { return strconv.FormatInt((b+1<<19)>>20, 10) })
	return strings.Join(parts, " ")
}

func statCell(s stat, figure string) string {
	if s.N == 0 {
		return "-"
	}
	unit := "ms" // or µs: printed alike
	if figure == "ops/s" {
		unit = "ops/s"
	}
	if s.N == 1 || number(s.Min, unit) == number(s.Max, unit) {
		return number(s.Median, unit)
	}
	return fmt.Sprintf("%s (%s-%s)", number(s.Median, unit), number(s.Min, unit), number(s.Max, unit))
}

func ratioCell(s stat) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 || fmt.Sprintf("%.2f", s.Min) == fmt.Sprintf("%.2f", s.Max) {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f-%.2f)", s.Median, s.Min, s.Max)
}

func ratio(a, e float64) string {
	if e == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/e)
}

// number prints ops/s with thousands separators and milliseconds to about
// three significant digits.
func number(v float64, unit string) string {
	if unit == "ops/s" {
		return count(int64(math.Round(v)))
	}
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// count prints n with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
