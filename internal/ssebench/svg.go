package ssebench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
)

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeSVG draws two panels: events per second over the run (delivered and
// published), and the latency percentiles on a log scale.
func writeSVG(w io.Writer, r *Result) error {
	const W, H, pad = 900, 360, 50
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s</text>`+"\n", pad,
		esc(fmt.Sprintf("%s / %s: %d subscribers, %d streams, lost %d, dup %d, %.0f delivered/s",
			r.Target, r.Scenario, r.Connected, r.Streams, r.Lost, r.Duplicated, r.DeliveredPerSec)))
	if r.Tag != "" {
		// The tag names the invocation (and the store, as bench.sh's
		// -bolt or -redis suffix): a chart is found again in the JSON lines.
		fmt.Fprintf(&b, `<text x="%d" y="36" font-size="11" fill="#555">%s</text>`+"\n", pad,
			esc(fmt.Sprintf("tag %s, %s", r.Tag, r.Time)))
	}

	// Panel 1: throughput per second.
	x0, y0, pw, ph := float64(pad), float64(H-pad), 380.0, float64(H-2*pad-10)
	maxY := 1.0
	for _, s := range [][]float64{r.PerSecond, r.PublishedPerSec} {
		for _, v := range s {
			maxY = math.Max(maxY, v)
		}
	}
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", x0, y0, x0+pw, y0)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", x0, y0, x0, y0-ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g">events/s (max %.0f)</text>`+"\n", x0, y0-ph-5, maxY)
	fmt.Fprintf(&b, `<text x="%g" y="%g">seconds</text>`+"\n", x0+pw-50, y0+30)
	for i, s := range []struct {
		v     []float64
		color string
		name  string
	}{{r.PerSecond, "steelblue", "delivered"}, {r.PublishedPerSec, "darkorange", "published"}} {
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s">%s</text>`+"\n", x0+10+float64(i)*90, y0+30, s.color, s.name)
		if len(s.v) == 0 {
			continue
		}
		var pts bytes.Buffer
		n := math.Max(1, float64(len(s.v)-1))
		for j, v := range s.v {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x0+float64(j)/n*pw, y0-v/maxY*ph)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, pts.String())
	}

	// Panel 2: latency percentiles, log10 microseconds.
	x1 := float64(W/2 + pad)
	l := r.LatencyUS
	bars := []struct {
		name string
		v    float64
	}{{"p50", l.P50}, {"p90", l.P90}, {"p99", l.P99}, {"p99.9", l.P999}, {"max", l.Max}}
	top := 1.0
	for _, v := range bars {
		top = math.Max(top, math.Ceil(math.Log10(math.Max(v.v, 1))))
	}
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", x1, y0, x1+pw, y0)
	fmt.Fprintf(&b, `<text x="%g" y="%g">publish→delivery latency (µs, log scale)</text>`+"\n", x1, y0-ph-5)
	for d := 0.0; d <= top; d++ {
		y := y0 - d/top*ph
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n",
			x1, y, x1+pw, y, x1-4, y+4, math.Pow(10, d))
	}
	bw := pw / float64(len(bars))
	for i, v := range bars {
		h := math.Log10(math.Max(v.v, 1)) / top * ph
		x := x1 + float64(i)*bw + bw*0.15
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="seagreen"/>`+"\n", x, y0-h, bw*0.7, h)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x+bw*0.35, y0+15, esc(v.name))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", x+bw*0.35, y0-h-3, v.v)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func writeSVGFile(path string, r *Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeSVG(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
