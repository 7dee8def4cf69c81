package bench

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"sort"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// The chart: one PNG, a panel per metric group (4 KiB read IOPS, 4 KiB
// write IOPS, 1 MiB read GB/s, 1 MiB overwrite GB/s), bars per target at
// the median with the min–max of the repetitions as a whisker. Drawn with
// image/draw and the Go fonts; no plotting library.

var (
	colWhite  = color.RGBA{255, 255, 255, 255}
	colBlack  = color.RGBA{30, 30, 30, 255}
	colGrid   = color.RGBA{225, 225, 225, 255}
	colMuted  = color.RGBA{100, 100, 100, 255}
	colPinned = color.RGBA{51, 102, 170, 255}
	colFree   = color.RGBA{153, 187, 221, 255}
	colTarget = color.RGBA{204, 51, 17, 255}
	colRef    = color.RGBA{34, 136, 51, 255}
)

// bar is one bar of a panel.
type bar struct {
	value, min, max float64 // in panel units
	ok              bool    // a valid median exists
	invalid         bool    // runs exist, none valid
}

type series struct {
	name string
	col  color.RGBA
	bars []bar // one per target
}

type refLine struct {
	value float64
	label string
	col   color.RGBA
}

type panel struct {
	title   string
	unit    string
	targets []string // bar groups; the x values of a line chart
	series  []series
	refs    []refLine
	format  func(float64) string
	// lines draws a line chart: series[i].bars[j] is the value at
	// targets[j], and targets are the x labels, evenly spaced.
	lines bool
	// whole: the axis covers every bar (no broken tall bars), for
	// latencies, where the tall bars are the story.
	whole bool
}

// plotLabels are the targets' names under the bars.
var plotLabels = map[string]string{
	"dir":                "directory\n(tmpfs)",
	"zcfuse-classic":     "zcfuse\nclassic",
	"zcfuse-uring":       "zcfuse\nuring",
	"base-classic":       "baseline\nclassic",
	"base-uring":         "baseline\nuring",
	"gofuse":             "go-fuse\nloopback",
	"zcfuse-passthrough": "zcfuse uring\n+passthrough",
	"native":             "native\npread/pwrite",
	"native-arena":       "native, from\nan arena",
	"posix-uring":        "posix through\nzcfuse uring",
	"ring-sleep":         "ring\nsleep",
	"ring-poll":          "ring\npoll",
}

// Colours of the zero-copy paths in the line charts.
var pathColours = map[string]color.RGBA{
	"native":       {30, 30, 30, 255},
	"native-arena": {150, 150, 150, 255},
	"posix-uring":  {221, 170, 51, 255},
	"ring-sleep":   {51, 102, 170, 255},
	"ring-poll":    {34, 136, 51, 255},
}

var (
	colWrite     = color.RGBA{204, 102, 51, 255}
	colWriteFree = color.RGBA{238, 187, 153, 255}
)

// bars are one row's bars, one per column of f (in panel units: value
// returns the bar, its whisker's low and high end), and whether any has
// a valid median.
func (f family) bars(rowID string, value func(cell) (v, lo, hi float64)) (bars []bar, any bool) {
	for _, c := range f.cols {
		b := f.bar(c.name, rowID, value)
		any = any || b.ok
		bars = append(bars, b)
	}
	return bars, any
}

// bar is the bar of col in row.
func (f family) bar(col, rowID string, value func(cell) (v, lo, hi float64)) bar {
	s := f.find(col, rowID)
	b := bar{ok: s.Valid > 0, invalid: s.Runs > 0 && s.Valid == 0}
	if b.ok {
		b.value, b.min, b.max = value(s)
	}
	return b
}

// names are the family's column names.
func (f family) names() []string {
	var out []string
	for _, c := range f.cols {
		out = append(out, c.name)
	}
	return out
}

// has says whether the family has a row id.
func (f family) has(id string) bool {
	return len(f.rowsWhere(func(l line) bool { return l.id == id })) > 0
}

// headline is a row's bar: the median (IOPS for latency rows, else GB/s)
// over scale, whiskers from min to max.
func headline(l line, scale float64) func(cell) (float64, float64, float64) {
	return func(c cell) (float64, float64, float64) {
		v := c.GBps
		if l.latency {
			v = c.IOPS
		}
		return v / scale, c.Min / scale, c.Max / scale
	}
}

// panels builds the panels from the report's medians: the fio rows',
// then the zero-copy rows'.
func (r *Report) panels() []panel {
	var out []panel
	kfmt := func(v float64) string {
		if v >= 100 {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.1f", v)
	}
	gfmt := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	f := r.fio()
	for _, g := range []struct {
		name, title string
		refs        []refLine
	}{
		{"randread-4k", "4 KiB random read, QD1, O_DIRECT: IOPS", []refLine{
			{80, "goal 80k", colTarget},
			{95, "libfuse passthrough_hp ~95k", colRef},
		}},
		{"randwrite-4k", "4 KiB random write, QD1, O_DIRECT: IOPS", nil},
	} {
		p := panel{title: g.title, unit: "kIOPS", targets: f.names(), refs: g.refs, format: kfmt}
		for _, pin := range []bool{true, false} {
			for _, row := range f.rowsWhere(func(l line) bool { return l.name == g.name && l.pinned == pin }) {
				if bars, ok := f.bars(row.id, headline(row, 1e3)); ok {
					c := colPinned
					if !pin {
						c = colFree
					}
					p.series = append(p.series, series{name: f.pinHead + " " + row.pinWord(), col: c, bars: bars})
				}
			}
		}
		if len(p.series) > 0 {
			out = append(out, p)
		}
	}
	for _, g := range []struct {
		id, title, unit string
		scale           float64
		refs            []refLine
	}{
		{"seqread-1m", "1 MiB sequential read, QD1, O_DIRECT: GB/s", "GB/s", 1, []refLine{{4, "goal 4 GB/s", colTarget}}},
		{"seqwrite-1m", "1 MiB sequential overwrite, QD1, O_DIRECT: GB/s", "GB/s", 1, nil},
		{"create", "File create, QD1 (fio filecreate): files/s", "kfiles/s", 1e3, nil},
		{"unlink", "File unlink, QD1 (fio filedelete): files/s", "kfiles/s", 1e3, nil},
	} {
		for _, row := range f.rowsWhere(func(l line) bool { return l.id == g.id }) {
			format := gfmt
			if g.scale != 1 {
				format = kfmt
			}
			if bars, ok := f.bars(row.id, headline(row, g.scale)); ok {
				out = append(out, panel{title: g.title, unit: g.unit, targets: f.names(), refs: g.refs, format: format,
					series: []series{{name: "fio pinned", col: colPinned, bars: bars}}})
			}
		}
	}
	return append(out, r.zcPanels()...)
}

// zcPanels are the zero-copy panels: 4 KiB QD1 mean latency by path
// (pinned and unpinned, read and write), QD32 IOPS by path, and the size
// sweep as two line charts (read, overwrite).
func (r *Report) zcPanels() []panel {
	f := r.zc()
	if len(f.cols) == 0 {
		return nil
	}
	var out []panel
	ufmt := func(v float64) string {
		if v >= 10 {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.1f", v)
	}
	meanUs := func(c cell) (float64, float64, float64) { return c.MeanUs, c.MeanMin, c.MeanMax }
	lat := panel{title: "4 KiB QD1 random, mean latency by path (lower is better)", unit: "µs", targets: f.names(), format: ufmt, whole: true,
		refs: []refLine{{7, "ring-sleep goal 7 µs", colTarget}, {3, "ring-poll goal 3 µs", colRef}}}
	for _, c := range []struct {
		op, pin string
		col     color.RGBA
	}{{"read", "pinned", colPinned}, {"write", "pinned", colWrite}, {"read", "unpinned", colFree}, {"write", "unpinned", colWriteFree}} {
		id := fmt.Sprintf("zc-rand%s-4k-qd1-%s", c.op, c.pin)
		if !f.has(id) {
			continue
		}
		if bars, ok := f.bars(id, meanUs); ok {
			lat.series = append(lat.series, series{name: c.op + " " + c.pin, col: c.col, bars: bars})
		}
	}
	if len(lat.series) > 0 {
		out = append(out, lat)
	}
	qd := panel{title: "4 KiB random, QD32 batches (32 submitted, then waited for), client pinned: IOPS", unit: "kIOPS", targets: f.names(), whole: true,
		format: func(v float64) string { return fmt.Sprintf("%.0f", v) }}
	for _, c := range []struct {
		id, name string
		col      color.RGBA
	}{{"zc-randread-4k-qd32", "read", colPinned}, {"zc-randwrite-4k-qd32", "write", colWrite}} {
		for _, row := range f.rowsWhere(func(l line) bool { return l.id == c.id }) {
			if bars, ok := f.bars(row.id, headline(row, 1e3)); ok {
				qd.series = append(qd.series, series{name: c.name, col: c.col, bars: bars})
			}
		}
	}
	if len(qd.series) > 0 {
		out = append(out, qd)
	}
	for _, g := range []struct{ op, title string }{
		{"READ", "Sequential read by block size, QD1, client pinned: GB/s"},
		{"WRITE", "Sequential overwrite by block size, QD1, client pinned: GB/s"},
	} {
		rows := f.rowsWhere(func(l line) bool { return l.group == GroupSweep && l.op == g.op })
		if len(rows) < 2 {
			continue
		}
		pn := panel{title: g.title, unit: "GB/s", lines: true, format: func(v float64) string { return fmt.Sprintf("%.2f", v) }}
		for _, row := range rows {
			pn.targets = append(pn.targets, sizeLabel(row.bs))
		}
		// a line per path, a point per row
		for _, c := range f.cols {
			sr := series{name: c.name, col: pathColours[c.name]}
			any := false
			for _, row := range rows {
				b := f.bar(c.name, row.id, headline(row, 1))
				sr.bars = append(sr.bars, b)
				any = any || b.ok
			}
			if any {
				pn.series = append(pn.series, sr)
			}
		}
		if len(pn.series) > 0 {
			out = append(out, pn)
		}
	}
	return out
}

// WritePlot draws the chart into a PNG file at path.
func (r *Report) WritePlot(path string) error {
	b, err := r.Plot()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Plot draws the chart and returns the PNG.
func (r *Report) Plot() ([]byte, error) {
	ps := r.panels()
	if len(ps) == 0 {
		return nil, fmt.Errorf("nothing to plot: no valid results")
	}
	c, err := newCanvas()
	if err != nil {
		return nil, err
	}
	const pw, ph, head = 760, 470, 70
	cols := 2
	if len(ps) == 1 {
		cols = 1
	}
	nrows := (len(ps) + cols - 1) / cols
	c.img = image.NewRGBA(image.Rect(0, 0, cols*pw, head+nrows*ph))
	draw.Draw(c.img, c.img.Bounds(), image.NewUniform(colWhite), image.Point{}, draw.Src)

	p := r.Params
	title := "zcfuse-bench: fio psync, QD1, O_DIRECT, through each target to a file in a tmpfs directory"
	sub := fmt.Sprintf("medians of %d × %gs; whiskers: min–max; pinned = fio on CPU %d.  %d CPUs %s, kernel %s, %s.  load %s → %s",
		p.Reps, p.RuntimeS, p.CPU, r.Machine.NProc, r.Machine.CPUModel, r.Machine.Kernel, r.Start[:min(10, len(r.Start))],
		firstField(r.LoadStart), firstField(r.LoadEnd))
	if len(r.ZCResults) > 0 {
		title = "zcfuse-bench: fio through each target, and zcfuse's client along each zero-copy path, to a file in a tmpfs directory"
		sub = fmt.Sprintf("medians of %d reps (fio %gs, client %gs); whiskers: min–max; pinned = CPU %d.  %d CPUs %s, kernel %s, %s.  load %s → %s",
			p.Reps, p.RuntimeS, p.ZCRuntimeS, p.CPU, r.Machine.NProc, r.Machine.CPUModel, r.Machine.Kernel, r.Start[:min(10, len(r.Start))],
			firstField(r.LoadStart), firstField(r.LoadEnd))
	}
	c.text(c.title, 16, 28, colBlack, title, 0)
	c.text(c.small, 16, 52, colMuted, sub, 0)
	for i, pn := range ps {
		x0, y0 := (i%cols)*pw, head+(i/cols)*ph
		c.panel(pn, image.Rect(x0, y0, x0+pw, y0+ph))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type canvas struct {
	img                 *image.RGBA
	title, label, small font.Face
}

func newCanvas() (*canvas, error) {
	reg, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, err
	}
	bold, err := opentype.Parse(gobold.TTF)
	if err != nil {
		return nil, err
	}
	face := func(f *opentype.Font, size float64) (font.Face, error) {
		return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	}
	c := &canvas{}
	if c.title, err = face(bold, 17); err != nil {
		return nil, err
	}
	if c.label, err = face(reg, 14); err != nil {
		return nil, err
	}
	if c.small, err = face(reg, 12); err != nil {
		return nil, err
	}
	return c, nil
}

// text draws s with its baseline at y; x is its left edge (align 0),
// centre (1) or right edge (2).
func (c *canvas) text(f font.Face, x, y int, col color.RGBA, s string, align int) {
	w := font.MeasureString(f, s).Round()
	switch align {
	case 1:
		x -= w / 2
	case 2:
		x -= w
	}
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: f, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func (c *canvas) rect(r image.Rectangle, col color.RGBA) {
	draw.Draw(c.img, r, image.NewUniform(col), image.Point{}, draw.Over)
}

func (c *canvas) hdash(x0, x1, y int, col color.RGBA) {
	for x := x0; x < x1; x += 9 {
		c.rect(image.Rect(x, y, min(x+5, x1), y+2), col)
	}
}

// panel draws one panel into area.
func (c *canvas) panel(p panel, area image.Rectangle) {
	if p.lines {
		c.linePanel(p, area)
		return
	}
	const left, right, top, bottom = 70, 20, 58, 62
	plot := image.Rect(area.Min.X+left, area.Min.Y+top, area.Max.X-right, area.Max.Y-bottom)
	c.text(c.title, area.Min.X+left, area.Min.Y+30, colBlack, p.title, 0)

	var all []bar
	for _, s := range p.series {
		all = append(all, s.bars...)
	}
	ymax := axisMax(all)
	if p.whole {
		ymax = 0
		for _, b := range all {
			if b.ok {
				ymax = math.Max(ymax, math.Max(b.value, b.max)*1.15)
			}
		}
		if ymax <= 0 {
			ymax = 1
		}
	}
	for _, rl := range p.refs {
		if rl.value*1.1 > ymax && rl.value < 3*ymax {
			ymax = rl.value * 1.1
		}
	}
	step := niceStep(ymax / 5)
	ymax = math.Ceil(ymax/step) * step
	y := func(v float64) int {
		return plot.Max.Y - int(math.Round(v/ymax*float64(plot.Dy())))
	}
	for v := 0.0; v <= ymax+step/2; v += step {
		yy := y(v)
		c.rect(image.Rect(plot.Min.X, yy, plot.Max.X, yy+1), colGrid)
		c.text(c.small, plot.Min.X-8, yy+4, colMuted, trimNum(v), 2)
	}
	c.text(c.small, area.Min.X+8, plot.Min.Y-12, colMuted, p.unit, 0)

	for _, rl := range p.refs {
		if rl.value <= ymax {
			c.hdash(plot.Min.X, plot.Max.X, y(rl.value), rl.col)
		}
	}

	n := len(p.targets)
	gw := float64(plot.Dx()) / float64(n)
	bw := gw * 0.72 / float64(len(p.series))
	for ti, name := range p.targets {
		gx := float64(plot.Min.X) + gw*float64(ti) + gw*0.14
		for si, s := range p.series {
			b := s.bars[ti]
			x0 := int(gx + bw*float64(si))
			x1 := int(gx + bw*float64(si+1) - 2)
			cx := (x0 + x1) / 2
			if !b.ok {
				why := "n/a"
				if b.invalid {
					why = "invalid"
				}
				c.text(c.small, cx, plot.Max.Y-6, colTarget, why, 1)
				continue
			}
			clipped := b.value > ymax
			top := y(math.Min(b.value, ymax))
			c.rect(image.Rect(x0, top, x1, plot.Max.Y), s.col)
			if clipped {
				// a break in the bar: it goes on beyond the axis
				for k := 0; k < 2; k++ {
					yy := top + 20 + 7*k
					c.rect(image.Rect(x0-2, yy, x1+2, yy+3), colWhite)
				}
				c.text(c.small, cx, top+14, colWhite, p.format(b.value)+" ↑", 1)
				continue
			}
			if b.max > b.min && b.max <= ymax {
				ylo, yhi := y(b.min), y(b.max)
				c.rect(image.Rect(cx, yhi, cx+1, ylo+1), colBlack)
				c.rect(image.Rect(cx-4, yhi, cx+5, yhi+1), colBlack)
				c.rect(image.Rect(cx-4, ylo, cx+5, ylo+1), colBlack)
			}
			ly := top - 5
			if b.max <= ymax && y(b.max) < top {
				ly = y(b.max) - 5
			}
			lbl := p.format(b.value)
			lw := font.MeasureString(c.small, lbl).Round()
			c.rect(image.Rect(cx-lw/2-2, ly-11, cx+lw/2+3, ly+3), colWhite)
			c.text(c.small, cx, ly, colBlack, lbl, 1)
		}
		label := plotLabels[name]
		if label == "" {
			label = name
		}
		for li, line := range strings.Split(label, "\n") {
			c.text(c.label, int(float64(plot.Min.X)+gw*(float64(ti)+0.5)), plot.Max.Y+20+17*li, colBlack, line, 1)
		}
	}
	c.rect(image.Rect(plot.Min.X, plot.Max.Y, plot.Max.X, plot.Max.Y+1), colBlack)
	c.rect(image.Rect(plot.Min.X, plot.Min.Y, plot.Min.X+1, plot.Max.Y+1), colBlack)

	// legend, right-aligned above the plot: series swatches, then the
	// reference lines
	lx := plot.Max.X
	ly := plot.Min.Y - 12
	item := func(label string, col color.RGBA, dashed bool) {
		lx -= font.MeasureString(c.small, label).Round()
		c.text(c.small, lx, ly, colBlack, label, 0)
		if dashed {
			lx -= 24
			c.hdash(lx, lx+19, ly-5, col)
		} else {
			lx -= 16
			c.rect(image.Rect(lx, ly-10, lx+12, ly+2), col)
		}
		lx -= 14
	}
	if len(p.series) > 1 {
		for i := len(p.series) - 1; i >= 0; i-- {
			item(p.series[i].name, p.series[i].col, false)
		}
	}
	for i := len(p.refs) - 1; i >= 0; i-- {
		item(p.refs[i].label, p.refs[i].col, true)
	}
}

// linePanel draws a line chart: one line per series over evenly spaced
// x labels, a marker per valid point (a hollow gap where a run is
// missing), the legend below the x labels.
func (c *canvas) linePanel(p panel, area image.Rectangle) {
	const left, right, top, bottom = 70, 20, 58, 92
	plot := image.Rect(area.Min.X+left, area.Min.Y+top, area.Max.X-right, area.Max.Y-bottom)
	c.text(c.title, area.Min.X+left, area.Min.Y+30, colBlack, p.title, 0)
	var top0 float64
	for _, s := range p.series {
		for _, b := range s.bars {
			if b.ok {
				top0 = math.Max(top0, math.Max(b.value, b.max))
			}
		}
	}
	if top0 <= 0 {
		top0 = 1
	}
	ymax := top0 * 1.1
	step := niceStep(ymax / 5)
	ymax = math.Ceil(ymax/step) * step
	y := func(v float64) int { return plot.Max.Y - int(math.Round(v/ymax*float64(plot.Dy()))) }
	for v := 0.0; v <= ymax+step/2; v += step {
		yy := y(v)
		c.rect(image.Rect(plot.Min.X, yy, plot.Max.X, yy+1), colGrid)
		c.text(c.small, plot.Min.X-8, yy+4, colMuted, trimNum(v), 2)
	}
	c.text(c.small, area.Min.X+8, plot.Min.Y-12, colMuted, p.unit, 0)
	n := len(p.targets)
	x := func(i int) int {
		return plot.Min.X + int(math.Round((float64(i)+0.5)*float64(plot.Dx())/float64(n)))
	}
	for i, l := range p.targets {
		c.rect(image.Rect(x(i), plot.Max.Y, x(i)+1, plot.Max.Y+5), colBlack)
		c.text(c.label, x(i), plot.Max.Y+20, colBlack, l, 1)
	}
	for _, s := range p.series {
		for i := 0; i+1 < len(s.bars); i++ {
			a, b := s.bars[i], s.bars[i+1]
			if a.ok && b.ok {
				c.line(x(i), y(a.value), x(i+1), y(b.value), s.col)
			}
		}
		for i, b := range s.bars {
			if b.ok {
				c.rect(image.Rect(x(i)-3, y(b.value)-3, x(i)+4, y(b.value)+4), s.col)
			}
		}
	}
	c.rect(image.Rect(plot.Min.X, plot.Max.Y, plot.Max.X, plot.Max.Y+1), colBlack)
	c.rect(image.Rect(plot.Min.X, plot.Min.Y, plot.Min.X+1, plot.Max.Y+1), colBlack)
	lx, ly := plot.Min.X, plot.Max.Y+50
	for _, s := range p.series {
		c.rect(image.Rect(lx, ly-7, lx+18, ly-4), s.col)
		c.rect(image.Rect(lx+6, ly-9, lx+12, ly-2), s.col)
		lx += 24
		c.text(c.small, lx, ly, colBlack, s.name, 0)
		lx += font.MeasureString(c.small, s.name).Round() + 18
	}
}

// line draws a 3-pixel-wide line from (x0, y0) to (x1, y1).
func (c *canvas) line(x0, y0, x1, y1 int, col color.RGBA) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		xx := x0 + (x1-x0)*i/steps
		yy := y0 + (y1-y0)*i/steps
		c.img.SetRGBA(xx, yy, col)
		c.img.SetRGBA(xx, yy-1, col)
		c.img.SetRGBA(xx, yy+1, col)
		c.img.SetRGBA(xx-1, yy, col)
		c.img.SetRGBA(xx+1, yy, col)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// axisMax is the top of the value axis: above the largest whisker,
// unless the bars split into a tall group and a short one (the kernel's
// own paths next to FUSE servers: a gap of 3× or more between two
// neighbouring values): then above the short group, so it stays readable,
// and the tall bars are drawn broken with their values.
func axisMax(bars []bar) float64 {
	var vals []float64
	for _, b := range bars {
		if b.ok {
			vals = append(vals, b.value)
		}
	}
	if len(vals) == 0 {
		return 1
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(vals)))
	limit := vals[0]
	for i := 0; i+1 < len(vals); i++ {
		if vals[i+1] > 0 && vals[i] > 3*vals[i+1] {
			limit = vals[i+1]
			break
		}
	}
	var top float64
	for _, b := range bars {
		if b.ok && b.value <= limit {
			top = math.Max(top, math.Max(b.value, b.max))
		}
	}
	if top <= 0 {
		return 1
	}
	return top * 1.15
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func trimNum(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
