package study

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/report"
)

// MetricNames are the summarised metrics, in report order.
var MetricNames = []string{"balanced_accuracy", "macro_f1", "accuracy", "ari", "nmi"}

// Summary is the mean ± sd over replicates (evaluation seed × pretraining
// seed) of one setting, head and label fraction. For k-fold a replicate's
// value is the mean over its folds; for LOSO (Section "all") the mean over
// the held-out sections.
type Summary struct {
	Eval, Section, Setting, Modality, Features, Pretext, Fusion string
	Context                                                     bool
	Head                                                        string
	Fraction                                                    float64
	N                                                           int               // replicates
	Metrics                                                     map[string]MeanSD // MetricNames and "f1_<class slug>"
}

// MeanSD is a mean and sample standard deviation (NaN sd for one value).
type MeanSD struct{ Mean, SD float64 }

func (m MeanSD) String() string {
	if math.IsNaN(m.Mean) {
		return "–"
	}
	if math.IsNaN(m.SD) {
		return fmt.Sprintf("%.3f", m.Mean)
	}
	return fmt.Sprintf("%.3f ± %.3f", m.Mean, m.SD)
}

func (s *Summary) key() string {
	return fmt.Sprintf("%s|%s|%s|%s|%t|%s|%g", s.Eval, s.Section, s.Setting, s.Pretext, s.Context, s.Head, s.Fraction)
}

// rowMetrics returns the summarised metrics of a row.
func rowMetrics(r *Row, classes []string) map[string]float64 {
	m := map[string]float64{"balanced_accuracy": r.BalancedAccuracy, "macro_f1": r.MacroF1, "accuracy": r.Accuracy,
		"ari": r.ARI, "nmi": r.NMI}
	for c, name := range classes {
		if c < len(r.F1) {
			m["f1_"+slug(name)] = r.F1[c]
		}
	}
	return m
}

// nanMean is the mean of the non-NaN values (NaN if none).
func nanMean(v []float64) float64 {
	var s float64
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// Summarize aggregates rows: within a replicate over folds (or held-out
// sections), then mean ± sd over replicates. LOSO rows are summarised per
// held-out section and over all of them (Section "all").
func Summarize(rows []*Row, classes []string) []Summary {
	type group struct {
		s    Summary
		reps map[string]map[string][]float64 // replicate → metric → values over folds
		ord  []string
	}
	groups := map[string]*group{}
	var order []string
	add := func(r *Row, section string) {
		s := Summary{Eval: r.Eval, Section: section, Setting: r.Setting, Modality: r.Modality, Features: r.Features,
			Pretext: r.Pretext, Fusion: r.Fusion, Context: r.Context, Head: r.Head, Fraction: r.Fraction}
		k := s.key()
		g, ok := groups[k]
		if !ok {
			g = &group{s: s, reps: map[string]map[string][]float64{}}
			groups[k] = g
			order = append(order, k)
		}
		rep := fmt.Sprintf("%d/%d", r.PSeed, r.Seed)
		if g.reps[rep] == nil {
			g.reps[rep] = map[string][]float64{}
			g.ord = append(g.ord, rep)
		}
		for name, v := range rowMetrics(r, classes) {
			g.reps[rep][name] = append(g.reps[rep][name], v)
		}
	}
	for _, r := range rows {
		add(r, r.Section)
		if r.Eval == "loso" {
			add(r, "all")
		}
	}
	var out []Summary
	for _, k := range order {
		g := groups[k]
		s := g.s
		s.N = len(g.ord)
		s.Metrics = map[string]MeanSD{}
		names := map[string]bool{}
		for _, rep := range g.ord {
			for name := range g.reps[rep] {
				names[name] = true
			}
		}
		for name := range names {
			var vals []float64
			for _, rep := range g.ord {
				if v := nanMean(g.reps[rep][name]); !math.IsNaN(v) {
					vals = append(vals, v)
				}
			}
			m, sd := metrics.MeanSD(vals)
			s.Metrics[name] = MeanSD{m, sd}
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Eval != b.Eval {
			return a.Eval < b.Eval
		}
		if a.Section != b.Section {
			return a.Section < b.Section
		}
		return a.Fraction < b.Fraction
	})
	return out
}

// writeSummary writes the summaries as CSV (one column pair per metric).
func writeSummary(path string, sums []Summary, classes []string) error {
	names := slices.Clone(MetricNames)
	for _, c := range classes {
		names = append(names, "f1_"+slug(c))
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	h := []string{"eval", "section", "setting", "modality", "features", "pretext", "fusion", "context", "head", "fraction", "n"}
	for _, n := range names {
		h = append(h, n+"_mean", n+"_sd")
	}
	w.Write(h)
	for _, s := range sums {
		rec := []string{s.Eval, s.Section, s.Setting, s.Modality, s.Features, s.Pretext, s.Fusion, strconv.FormatBool(s.Context),
			s.Head, fmtFloat(s.Fraction), strconv.Itoa(s.N)}
		for _, n := range names {
			m, ok := s.Metrics[n]
			if !ok {
				m = MeanSD{math.NaN(), math.NaN()}
			}
			rec = append(rec, fmtFloat(m.Mean), fmtFloat(m.SD))
		}
		w.Write(rec)
	}
	w.Flush()
	return atomicfile.WriteFile(path, buf.Bytes())
}

// pct formats a fraction as a percentage label.
func pct(f float64) string { return strconv.FormatFloat(100*f, 'g', 3, 64) + " %" }

// displayName names a summary's method in tables and charts.
func displayName(s *Summary) string {
	name := s.Setting
	if s.PretextTag() != "" {
		name += " [" + s.Pretext + "]"
	}
	if s.Head != "" && s.Head != "majority" && s.Head != "gated" {
		name += " / " + s.Head
	}
	return name
}

// PretextTag is the pretext shown in names: only for pretrained image settings.
func (s *Summary) PretextTag() string {
	if s.Features == "pretrained" && s.Modality != "expr" && !strings.HasSuffix(s.Setting, s.Pretext) {
		return s.Pretext
	}
	return ""
}

func toReport(m map[string]MeanSD) map[string]report.MeanSD {
	out := map[string]report.MeanSD{}
	for k, v := range m {
		if math.IsNaN(v.Mean) {
			continue
		}
		sd := v.SD
		if math.IsNaN(sd) {
			sd = 0
		}
		out[k] = report.MeanSD{Mean: v.Mean, SD: sd}
	}
	return out
}

// best returns the summary with the highest mean balanced accuracy among
// those matching keep (nil if none).
func best(sums []Summary, keep func(*Summary) bool) *Summary {
	var b *Summary
	for i := range sums {
		s := &sums[i]
		if !keep(s) {
			continue
		}
		v := s.Metrics["balanced_accuracy"].Mean
		if math.IsNaN(v) {
			continue
		}
		if b == nil || v > b.Metrics["balanced_accuracy"].Mean {
			b = s
		}
	}
	return b
}

// buildReport assembles the report input.
func (r *runner) buildReport(res *Results) *report.Input {
	cfg := r.cfg
	sums := res.Summary
	cfgJSON, _ := json.Marshal(cfg)
	in := &report.Input{
		Title:       "spotfuse study: " + cfg.Name,
		Subtitle:    fmt.Sprintf("k-fold within %s; leave-one-section-out over %s; %d classes", strings.Join(cfg.Targets, ", "), strings.Join(cfg.LOSO, ", "), len(r.classes)),
		Generated:   "generated " + time.Now().UTC().Format(time.RFC3339) + "\nconfig " + string(cfgJSON),
		MetricOrder: MetricNames,
		ResultsCSV:  filepath.Base(res.ResultsCSV),
	}
	mapFrac := cfg.Fractions[nearest(cfg.Fractions, cfg.MapFraction)]
	in.Notes = append(in.Notes,
		fmt.Sprintf("Classes: %s (excluded: %s). Mean ± sd over %d evaluation seed(s) × %d pretraining seed(s); within a seed, the mean over %d folds.",
			strings.Join(r.classes, ", "), strings.Join(cfg.ExcludeLabels, ", "), cfg.Seeds, len(cfg.Pretrain.Seeds), cfg.Folds),
		"Unsupervised steps see every section, evaluated ones included: gene matching, HVG selection and PCA are fitted on the expression pool, and the image encoder is pretrained on the image pool (which contains the target sections' patches, never their labels).",
		"A label fraction keeps at least one spot per class of the training fold, so small fractions hold more spots than the nominal share.")
	if slices.Contains(cfg.Baselines, "random") {
		in.Notes = append(in.Notes, "Random encoders are untrained, but the random image encoder's BatchNorm running statistics are re-estimated on the pretraining patches (no weight is trained), so its eval-mode activations are on a sensible scale; the random expression encoder has no BatchNorm.")
	}
	if !cfg.Pretrain.Cross.Off && !cfg.Pretrain.Image.Off && !cfg.Pretrain.Expr.Off {
		in.Notes = append(in.Notes, fmt.Sprintf("\"cross\" settings: projection heads trained for %d steps with a symmetric InfoNCE (CLIP) loss to align the frozen pretrained image and expression embeddings of the same spot on the image pool sections (no labels, no spatial context); each modality is then mapped to the %d-wide shared space on its own.",
			cfg.Pretrain.Cross.Steps, cfg.Pretrain.Cross.Shared))
	}

	for _, t := range r.targets {
		at := func(s *Summary, frac float64) bool {
			return s.Eval == "kfold" && s.Section == t.Name && s.Fraction == frac
		}
		// Summary table: the map fraction and 100 %.
		for _, frac := range []float64{mapFrac, 1} {
			for i := range sums {
				s := &sums[i]
				if at(s, frac) {
					in.Summary = append(in.Summary, report.SummaryRow{Name: displayName(s),
						Setting: fmt.Sprintf("%s k-fold, %s labels", t.Name, pct(frac)), N: s.N, Metrics: toReport(s.Metrics)})
				}
			}
			if frac == 1 && mapFrac == 1 {
				break
			}
		}
		// Curves: one series per setting with the first configured head
		// (gated: its own head, majority: majority).
		for _, metric := range []string{"balanced_accuracy", "macro_f1"} {
			for _, head := range cfg.Heads {
				c := report.Curve{Title: fmt.Sprintf("%s: %s vs label fraction (%s heads)", t.Name, metric, head),
					XLabel: "labelled spots of the training fold (%)", YLabel: metric}
				seen := map[string]int{}
				for i := range sums {
					s := &sums[i]
					if s.Eval != "kfold" || s.Section != t.Name || (s.Head != head && s.Head != "gated" && s.Head != "majority") {
						continue
					}
					name := displayName(s)
					k, ok := seen[name]
					if !ok {
						k = len(c.Series)
						seen[name] = k
						c.Series = append(c.Series, report.Series{Name: name})
					}
					m := s.Metrics[metric]
					sd := m.SD
					if math.IsNaN(sd) {
						sd = 0
					}
					if math.IsNaN(m.Mean) {
						continue
					}
					c.Series[k].X = append(c.Series[k].X, 100*s.Fraction)
					c.Series[k].Mean = append(c.Series[k].Mean, m.Mean)
					c.Series[k].SD = append(c.Series[k].SD, sd)
				}
				if len(c.Series) > 0 {
					in.Curves = append(in.Curves, c)
				}
			}
		}
		// Modality contribution at the map fraction: the best method of
		// each modality (and fusion).
		type pick struct {
			label string
			keep  func(*Summary) bool
		}
		picks := []pick{
			{"majority class", func(s *Summary) bool { return s.Features == "majority" }},
			{"image only", func(s *Summary) bool { return s.Modality == "image" }},
			{"expression only", func(s *Summary) bool { return s.Modality == "expr" }},
			{"fused (concat)", func(s *Summary) bool { return s.Fusion == "concat" }},
			{"fused (gated)", func(s *Summary) bool { return s.Fusion == "gated" }},
		}
		var chosen []*Summary
		for _, p := range picks {
			b := best(sums, func(s *Summary) bool { return at(s, mapFrac) && p.keep(s) })
			if b == nil {
				continue
			}
			m := b.Metrics["balanced_accuracy"]
			sd := m.SD
			if math.IsNaN(sd) {
				sd = 0
			}
			in.Contribution = append(in.Contribution, report.Bar{Name: p.label + "\n" + displayName(b), Mean: m.Mean, SD: sd})
			if p.label != "majority class" {
				chosen = append(chosen, b)
			}
		}
		in.ContributionTitle = fmt.Sprintf("Modality contribution, %s at %s labels (best method of each)", t.Name, pct(mapFrac))
		r.addNotes(in, chosen, t.Name, mapFrac)
		if note := labelledSpots(res.Rows, t.Name, cfg.Fractions); note != "" {
			in.Notes = append(in.Notes, note)
		}
		// Confusion matrices (summed over folds and seeds) and maps.
		in.Maps = append(in.Maps, r.truthMap(t))
		for _, b := range chosen {
			cls, counts := trimConfusion(r.classes, sumConfusion(res.Rows, b, len(r.classes)))
			in.Confusions = append(in.Confusions, report.Confusion{
				Title:   fmt.Sprintf("%s, %s labels: %s", t.Name, pct(mapFrac), displayName(b)),
				Classes: cls, Counts: counts})
			if m := r.predictionMap(t, res.OOF, b); m != nil {
				in.Maps = append(in.Maps, *m)
			}
		}
		if g := best(sums, func(s *Summary) bool { return at(s, mapFrac) && s.Fusion == "gated" }); g != nil {
			if m := r.gateMap(t, res.OOF, g); m != nil {
				in.Maps = append(in.Maps, *m)
			}
		}
		// Per-class F1 table at the map fraction.
		var present []string
		for c, name := range r.classes {
			if slices.Contains(t.Y, c) {
				present = append(present, name)
			}
		}
		tab := report.Table{Title: fmt.Sprintf("Per-class F1, %s at %s labels (mean ± sd)", t.Name, pct(mapFrac)),
			Header: append([]string{"method"}, present...)}
		for i := range sums {
			s := &sums[i]
			if !at(s, mapFrac) {
				continue
			}
			row := []string{displayName(s)}
			for _, c := range present {
				row = append(row, s.Metrics["f1_"+slug(c)].String())
			}
			tab.Rows = append(tab.Rows, row)
		}
		in.Tables = append(in.Tables, tab)
		// Unsupervised clustering.
		ct := report.Table{Title: fmt.Sprintf("Unsupervised k-means (k = classes present) on %s: agreement with the labels", t.Name),
			Header: []string{"features", "ARI", "NMI"}}
		for i := range sums {
			s := &sums[i]
			if s.Eval == "cluster" && s.Section == t.Name {
				ct.Rows = append(ct.Rows, []string{displayName(s), s.Metrics["ari"].String(), s.Metrics["nmi"].String()})
			}
		}
		if len(ct.Rows) > 0 {
			in.Tables = append(in.Tables, ct)
		}
	}
	if len(r.loso) > 1 {
		lt := report.Table{Title: "Leave one section out (expression): balanced accuracy per held-out section, mean ± sd",
			Header: []string{"method", "labels"}}
		for _, t := range r.loso {
			lt.Header = append(lt.Header, t.Name)
		}
		lt.Header = append(lt.Header, "all", "macro-F1 (all)", "ARI (all)")
		for i := range sums {
			s := &sums[i]
			if s.Eval != "loso" || s.Section != "all" {
				continue
			}
			row := []string{displayName(s), pct(s.Fraction)}
			for _, t := range r.loso {
				v := MeanSD{math.NaN(), math.NaN()}
				for j := range sums {
					o := &sums[j]
					if o.Eval == "loso" && o.Section == t.Name && sameMethod(o, s) {
						v = o.Metrics["balanced_accuracy"]
					}
				}
				row = append(row, v.String())
			}
			row = append(row, s.Metrics["balanced_accuracy"].String(), s.Metrics["macro_f1"].String(), s.Metrics["ari"].String())
			lt.Rows = append(lt.Rows, row)
			in.Summary = append(in.Summary, report.SummaryRow{Name: displayName(s),
				Setting: fmt.Sprintf("LOSO %s, %s labels", strings.Join(cfg.LOSO, ","), pct(s.Fraction)), N: s.N, Metrics: toReport(s.Metrics)})
		}
		in.Tables = append(in.Tables, lt)
	}
	st := report.Table{Title: "Wall time per stage", Header: []string{"stage", "seconds"}}
	for _, s := range r.stages {
		st.Rows = append(st.Rows, []string{s.Name, fmt.Sprintf("%.1f", s.Seconds)})
	}
	in.Tables = append(in.Tables, st)
	return in
}

// sameMethod reports whether a and b summarise the same method and fraction.
func sameMethod(a, b *Summary) bool {
	return a.Setting == b.Setting && a.Pretext == b.Pretext && a.Context == b.Context && a.Head == b.Head && a.Fraction == b.Fraction
}

// addNotes states plainly whether fusion beat the best single modality.
func (r *runner) addNotes(in *report.Input, chosen []*Summary, section string, frac float64) {
	var bestSingle, bestFused *Summary
	for _, s := range chosen {
		v := s.Metrics["balanced_accuracy"].Mean
		if s.Modality == "fused" {
			if bestFused == nil || v > bestFused.Metrics["balanced_accuracy"].Mean {
				bestFused = s
			}
		} else if bestSingle == nil || v > bestSingle.Metrics["balanced_accuracy"].Mean {
			bestSingle = s
		}
	}
	if bestSingle == nil || bestFused == nil {
		return
	}
	f, b := bestFused.Metrics["balanced_accuracy"], bestSingle.Metrics["balanced_accuracy"]
	verdict := "did not beat"
	switch {
	case f.Mean-b.Mean > math.Max(f.SD, b.SD):
		verdict = "beat"
	case f.Mean > b.Mean:
		verdict = "was within one sd of (slightly above)"
	}
	in.Notes = append(in.Notes, fmt.Sprintf("On %s at %s labels the best fused method (%s, balanced accuracy %s) %s the best single modality (%s, %s).",
		section, pct(frac), displayName(bestFused), f, verdict, displayName(bestSingle), b))
	if verdict == "beat" {
		return
	}
	// Say why, from the numbers: a weak second modality, or a gap within
	// the seed-to-seed spread.
	var bestOther *Summary
	for _, s := range chosen {
		if s.Modality != "fused" && s.Modality != bestSingle.Modality &&
			(bestOther == nil || s.Metrics["balanced_accuracy"].Mean > bestOther.Metrics["balanced_accuracy"].Mean) {
			bestOther = s
		}
	}
	why := fmt.Sprintf("The difference (%+.3f) is smaller than the sd over seeds (%.3f), so these runs cannot separate the two.", f.Mean-b.Mean, math.Max(f.SD, b.SD))
	if b.Mean-f.Mean > math.Max(f.SD, b.SD) {
		why = fmt.Sprintf("Fusion is clearly worse here (%+.3f, more than the sd over seeds): the fused input is wider than either modality's, and with this few labelled spots the head likely overfits it.", f.Mean-b.Mean)
	}
	if bestOther != nil {
		o := bestOther.Metrics["balanced_accuracy"]
		if b.Mean-o.Mean > math.Max(b.SD, o.SD) {
			why = fmt.Sprintf("The other modality alone is clearly weaker (%s, %s), so fusing it mostly adds features the few-label head must learn to ignore. %s", displayName(bestOther), o, why)
		}
	}
	in.Notes = append(in.Notes, why)
}

// labelledSpots tells how many labelled spots each fraction meant on a
// section (mean over folds and seeds).
func labelledSpots(rows []*Row, section string, fracs []float64) string {
	var ref *Row
	for _, r := range rows {
		if r.Eval == "kfold" && r.Section == section {
			ref = r
			break
		}
	}
	if ref == nil {
		return ""
	}
	var parts []string
	for _, f := range fracs {
		sum, n := 0, 0
		for _, r := range rows {
			if r.Eval == "kfold" && r.Section == section && r.Fraction == f && r.Setting == ref.Setting && r.Head == ref.Head {
				sum += r.NTrain
				n++
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s → %.1f", pct(f), float64(sum)/float64(n)))
		}
	}
	return fmt.Sprintf("Labelled training spots per fold on %s (mean): %s.", section, strings.Join(parts, ", "))
}

// trimConfusion drops the classes that are neither true nor predicted.
func trimConfusion(classes []string, m [][]int) ([]string, [][]int) {
	var keep []int
	for c := range classes {
		n := 0
		for o := range classes {
			n += m[c][o] + m[o][c]
		}
		if n > 0 {
			keep = append(keep, c)
		}
	}
	cls := make([]string, len(keep))
	out := make([][]int, len(keep))
	for i, c := range keep {
		cls[i] = classes[c]
		out[i] = make([]int, len(keep))
		for j, o := range keep {
			out[i][j] = m[c][o]
		}
	}
	return cls, out
}

// sumConfusion adds the confusion matrices of every row of the summary's group.
func sumConfusion(rows []*Row, s *Summary, k int) [][]int {
	m := make([][]int, k)
	for i := range m {
		m[i] = make([]int, k)
	}
	for _, r := range rows {
		if r.Eval != s.Eval || r.Section != s.Section || r.Setting != s.Setting || r.Pretext != s.Pretext ||
			r.Context != s.Context || r.Head != s.Head || r.Fraction != s.Fraction || len(r.Confusion) != k {
			continue
		}
		for i := range k {
			for j := range k {
				m[i][j] += r.Confusion[i][j]
			}
		}
	}
	return m
}

// baseMap is a map of t's spots over its image.
func baseMap(t *Target, title string) report.SpatialMap {
	m := report.SpatialMap{Title: title}
	if t.Sec.Image != nil {
		m.Image, m.FromFullres, m.SpotDiameterPx = t.Sec.Image.Path, t.Sec.Image.FromFullres, t.Sec.Image.SpotDiameterPx
	}
	for _, sp := range t.Sec.Spots {
		m.X = append(m.X, sp.X)
		m.Y = append(m.Y, sp.Y)
	}
	return m
}

func (r *runner) truthMap(t *Target) report.SpatialMap {
	m := baseMap(t, t.Name+": pathologist labels (evaluated spots)")
	m.Categories = make([]string, len(t.Y))
	for i, c := range t.Y {
		if c >= 0 {
			m.Categories[i] = r.classes[c]
		}
	}
	m.Palette = r.classes
	return m
}

func findOOF(oofs []*OOF, section string, s *Summary) *OOF {
	for _, o := range oofs {
		if o.Section == section && o.Setting == s.Setting && o.Head == s.Head {
			return o
		}
	}
	return nil
}

func (r *runner) predictionMap(t *Target, oofs []*OOF, s *Summary) *report.SpatialMap {
	o := findOOF(oofs, t.Name, s)
	if o == nil {
		return nil
	}
	m := baseMap(t, fmt.Sprintf("%s: out-of-fold prediction, %s (seed 0, %s labels)", t.Name, displayName(s), pct(s.Fraction)))
	m.Categories = make([]string, len(o.Pred))
	for i, c := range o.Pred {
		if c >= 0 {
			m.Categories[i] = r.classes[c]
		}
	}
	m.Palette = r.classes
	return &m
}

// gateMap draws the image weight of the gated fusion per spot.
func (r *runner) gateMap(t *Target, oofs []*OOF, s *Summary) *report.SpatialMap {
	o := findOOF(oofs, t.Name, s)
	if o == nil || o.Gate == nil || o.Modalities != 2 {
		return nil
	}
	m := baseMap(t, fmt.Sprintf("%s: gate weight of the image (out-of-fold, %s, seed 0)", t.Name, displayName(s)))
	var xs, ys, vs []float64
	for i, c := range o.Pred {
		if c >= 0 {
			xs, ys = append(xs, m.X[i]), append(ys, m.Y[i])
			vs = append(vs, float64(o.Gate[2*i]))
		}
	}
	if len(vs) == 0 {
		return nil
	}
	m.X, m.Y, m.Values = xs, ys, vs
	m.ValueLabel = "gate weight (0 = expression, 1 = image)"
	m.ValueMin, m.ValueMax = 0, 1
	return &m
}
